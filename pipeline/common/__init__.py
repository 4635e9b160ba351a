"""What every pipeline shares: paths, params loading, errors, seeding, runtime, file writing,
figures, MLflow tracking and verified downloads."""
