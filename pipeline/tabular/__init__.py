"""Any tabular Kaggle competition: competition file, inferred schema, generic features, members, metrics."""
