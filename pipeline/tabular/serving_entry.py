"""The file MLflow runs to build a competition project's registered model ("models from code";
see pipeline/tabular/serving.py). Nothing imports this module: running it is its purpose."""

from mlflow.models import set_model

from pipeline.tabular.serving import CompetitionModel

set_model(CompetitionModel())
