"""kaggle-pipeline: the D2L chapter 3-4 recipes as a reproducible Kaggle pipeline."""
