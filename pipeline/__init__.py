"""kaggle-pipeline: the D2L chapter 3-4 recipes as a reproducible Kaggle pipeline."""

COMPETITION = "house-prices-advanced-regression-techniques"
