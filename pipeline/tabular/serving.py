"""A competition project's blend as an MLflow pyfunc model, registered under the competition's slug.

The same "models from code" as House Prices' (`pipeline/house_prices/serving.py`; what both carry
and how they load: `pipeline/tabular/registry.py`): the logged
model's artifacts are the saved blend folder, competition.yaml and schema.yaml, its code is the
`pipeline` package (and the competition's hook module, when it has one), so loading runs no
pickle. `predict` takes rows of Kaggle's test.csv as `pandas.read_csv` reads them, the id
included, checks them with the inferred schema as the validate stage does, and returns the
submission's rows in the sample submission's layout.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from pipeline.tabular.competition import Competition, read_competition
from pipeline.tabular.hooks import load_hooks
from pipeline.tabular.modeling import FittedBlend, Problem, load_blend
from pipeline.tabular.registry import PACKAGE, load_registered, pinned_requirements
from pipeline.tabular.schema import read_schema, test_schema
from pipeline.tabular.submission import submission_frame
from pipeline.tabular.validation import ValidationFailed

MODEL_NAME = "model"
ENTRY = Path(__file__).with_name("serving_entry.py")
EXAMPLE_ROWS = 3


class CompetitionModel(PythonModel):
    """The pyfunc wrapper: the saved blend, its competition and its schema."""

    def load_context(self, context: Any) -> None:
        self.blend, _spec = load_blend(Path(context.artifacts["blend"]))
        self.competition = read_competition(Path(context.artifacts["competition"]))
        self.schema = test_schema(read_schema(Path(context.artifacts["schema"])), self.competition.target)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return predict_rows(self.blend, self.competition, self.schema, pd.DataFrame(model_input))


def predict_rows(blend: FittedBlend, competition: Competition, schema: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """The submission rows for raw test rows; rows the schema refuses are a 400 when served."""
    import pandera.errors
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    try:
        checked = schema.validate(rows.reindex(columns=list(schema.columns)), lazy=True)
    except (pandera.errors.SchemaErrors, ValidationFailed) as exc:
        raise MlflowException(f"the rows fail the competition's schema: {exc}"[:2000],
                              error_code=INVALID_PARAMETER_VALUE) from exc
    problem = Problem.of(competition, load_hooks(competition.module))
    link = blend.link(problem.features(checked))
    return submission_frame(competition, checked[competition.id_column].to_numpy(), link, blend.threshold)


def log_model(model_dir: Path, competition_file: Path, schema_file: Path, raw_test: pd.DataFrame,
              competition: Competition) -> Any:
    """Log the blend as a pyfunc model into the active run, registered as the competition's slug."""
    import mlflow
    from mlflow.models import ModelSignature, infer_signature

    hook = Path(f"{competition.module.replace('.', '/')}.py") if competition.module else None
    code = [str(PACKAGE), *([str(competition_file.parent / hook)] if hook and
                            (competition_file.parent / hook).is_file() else [])]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = ModelSignature(inputs=infer_signature(raw_test).inputs)
    return mlflow.pyfunc.log_model(
        name=MODEL_NAME, python_model=str(ENTRY),
        artifacts={"blend": str(model_dir), "competition": str(competition_file), "schema": str(schema_file)},
        code_paths=code, signature=signature,
        input_example=raw_test.head(EXAMPLE_ROWS), pip_requirements=pinned_requirements(),
        registered_model_name=competition.slug)


def write_registered_submission(paths: Any, uri: str, output: Path | None = None) -> Path:
    """The submission of a logged or registered model for test.csv as read, through the predict
    stage's checks; written to `output` (default: `paths.submission_from(uri)`)."""
    from pipeline.tabular.submission import write_submission

    if not paths.raw_test.exists():
        raise FileNotFoundError(f"{paths.raw_test} is missing: run `dvc repro fetch` first")
    competition = read_competition(paths.competition_file)
    raw_test = pd.read_csv(paths.raw_test)
    frame = load_registered(paths, uri).predict(raw_test)
    return write_submission(frame, competition, raw_test[competition.id_column].to_numpy(),
                            output or paths.submission_from(uri))
