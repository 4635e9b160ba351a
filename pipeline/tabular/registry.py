"""The pipeline's models in MLflow: what code and distributions a logged model carries, and
loading one by URI from a project's tracking store. Every competition's pyfunc model (House
Prices' and a `kpipe new` project's) is logged and loaded through these."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from pipeline.common.errors import PipelineError
from pipeline.common.paths import ProjectPaths
from pipeline.common.redact import redact
from pipeline.common.tracking import tracking_uri

PACKAGE = Path(__file__).resolve().parents[1]  # pipeline/, carried by the model as its code
# The distributions whose modules the model's code imports (tests/test_serving.py checks that
# they cover them), and scipy, which scikit-learn computes with; pinned at the versions
# installed when the model is logged.
REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "scikit-learn", "scipy", "skops", "safetensors",
                "pandera", "tqdm", "pyyaml", "requests", "lightgbm", "catboost")


def pinned_requirements() -> list[str]:
    """`name==version` of each distribution the model needs, as installed now (local version
    labels such as torch's `+cpu` dropped: the pin then matches the CPU and CUDA builds)."""
    return [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in REQUIREMENTS]


class ModelUnavailable(PipelineError, RuntimeError):
    """The model URI names nothing MLflow can load (unknown name or version, no store)."""


def load_registered(paths: ProjectPaths, uri: str) -> Any:
    """`mlflow.pyfunc.load_model(uri)` from the project's tracking store, e.g.
    `models:/house-prices/3` or `models:/<competition>/latest`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri(paths))
    try:
        return mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        raise ModelUnavailable(f"cannot load {uri} from {redact(tracking_uri(paths))}: {exc.message}") from exc
