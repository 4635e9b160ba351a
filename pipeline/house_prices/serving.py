"""The trained predictor as an MLflow pyfunc model, registered as `house-prices`.

What `mlflow.pyfunc.load_model("models:/house-prices/latest")` and `mlflow models serve` run.
The model is logged with MLflow's "models from code": `log_model` gets the path of
`serving_entry.py` (which only calls `mlflow.models.set_model`) instead of a pickled instance,
its one artifact is the saved model folder (safetensors weights, skops transformers, JSON
configs), and its code is the `pipeline` package itself (`code_paths`). So loading runs no
pickle, and the wrapper holds no copy of the pipeline's logic: `load_context` is
`artifacts.load_members`, `predict` is the validate stage's schema plus `final.predict_blend`,
whatever members a trained experiment holds.

Input: rows of Kaggle's test.csv as `pandas.read_csv` reads them, **`Id` included** (one JSON
record per house when served); the signature is inferred from the whole test file, so its
types are the CSV's. The `Id` goes through unchanged, so the output is a submission,
`Id,SalePrice`, and rows never need to be matched back by position. Rows are then typed and
checked by the `RawTest` schema, as the validate stage does before `predict`, so the
registered model predicts the CSV exactly as `dvc repro` does.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.artifacts import load_members
from pipeline.house_prices.final import FinalModel, predict_blend
from pipeline.house_prices.schemas import CATEGORICAL_COLUMNS, ID, NUMERIC_COLUMNS, TARGET
from pipeline.house_prices.submission import write_submission
from pipeline.house_prices.validation import ValidationFailed, validate_test
from pipeline.tabular.registry import PACKAGE, load_registered, pinned_requirements

REGISTERED_MODEL = "house-prices"
MODEL_NAME = "model"  # the logged model's name within its run
MODEL_ARTIFACT = "house_prices"  # the saved model folder, as the pyfunc model's artifact
EXAMPLE_ROWS = 3
ENTRY = Path(__file__).with_name("serving_entry.py")
class HousePricesModel(PythonModel):
    """The pyfunc wrapper: every member of the saved experiment, blended as `predict` blends them."""

    def __init__(self) -> None:
        self.members: list[FinalModel] = []

    def load_context(self, context: Any) -> None:
        self.members = load_members(Path(context.artifacts[MODEL_ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return predict_prices(self.members, model_input)


def predict_prices(members: list[FinalModel], raw: pd.DataFrame) -> pd.DataFrame:
    """`Id,SalePrice` for raw test rows; a column left out of the input counts as missing."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    rows = pd.DataFrame(raw).reindex(columns=[ID, *NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS])
    try:
        checked = validate_test(rows)
    except ValidationFailed as exc:  # a 400 with the report when served, not a 500
        raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
    return predict_blend(members, checked).reset_index(drop=True)


def model_signature(raw_test: pd.DataFrame) -> Any:
    """Input: the columns of test.csv as `pandas.read_csv` gives them (integers long, numbers
    with gaps double, text string; a column with gaps in the test file is optional). Output:
    `Id` and `SalePrice`."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, DataType, Schema

    outputs = Schema([ColSpec(DataType.long, ID), ColSpec(DataType.double, TARGET)])
    with warnings.catch_warnings():
        # MLflow's hint that integer columns cannot hold gaps: in test.csv, the columns with
        # gaps are read as floats already, and those are what the signature declares.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        inputs = infer_signature(raw_test).inputs
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_model(model_dir: Path, raw_test: pd.DataFrame) -> Any:
    """Log the saved model folder as a pyfunc model into the active run and register it as
    REGISTERED_MODEL (a new version each time); MLflow's `ModelInfo`. `raw_test` is test.csv
    as read: it defines the signature, and its first rows are the input example."""
    import mlflow

    return mlflow.pyfunc.log_model(
        name=MODEL_NAME,
        python_model=str(ENTRY),
        artifacts={MODEL_ARTIFACT: str(model_dir)},
        code_paths=[str(PACKAGE)],
        signature=model_signature(raw_test),
        input_example=raw_test.head(EXAMPLE_ROWS),
        pip_requirements=pinned_requirements(),
        registered_model_name=REGISTERED_MODEL,
    )


def write_registered_submission(paths: ProjectPaths, uri: str, output: Path | None = None) -> Path:
    """The submission of a logged or registered model for test.csv as read, through the same
    checks as the `predict` stage's; written to `output` (default: `paths.submission_from(uri)`)."""
    if not paths.raw_test.exists():
        raise FileNotFoundError(f"{paths.raw_test} is missing: run `dvc repro fetch` first")
    raw_test = pd.read_csv(paths.raw_test)
    prices = load_registered(paths, uri).predict(raw_test)
    return write_submission(prices, raw_test[ID].to_numpy(), output or paths.submission_from(uri))
