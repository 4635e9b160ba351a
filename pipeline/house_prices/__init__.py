"""The House Prices pipeline: dataset, schemas, features, models, training, CV, the final fit,
artifacts, submission."""

COMPETITION = "house-prices-advanced-regression-techniques"
