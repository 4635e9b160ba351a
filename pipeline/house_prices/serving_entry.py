"""The file MLflow runs to build the registered model ("models from code"; see serving.py).

MLflow copies this file into the logged model and executes it when the model is loaded; the
`pipeline` package it imports travels with the model (its `code/` folder). Nothing imports
this module: running it is its purpose.
"""

from mlflow.models import set_model

from pipeline.house_prices.serving import HousePricesModel

set_model(HousePricesModel())
