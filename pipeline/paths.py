"""Every file the pipeline reads or writes, derived from one project root.

`dvc.yaml` mirrors these paths in its `deps`/`outs`; `tests/test_dvc_contract.py` checks
that the two agree. Nothing here touches the disk at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProjectPaths:
    """Paths of one checkout. Stages run at the project root (DVC's working directory)."""

    root: Path

    @classmethod
    def here(cls) -> "ProjectPaths":
        return cls(Path.cwd())

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    # --- house prices -------------------------------------------------------------------
    @property
    def raw_dir(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def raw_train(self) -> Path:
        return self.raw_dir / "train.csv"

    @property
    def raw_test(self) -> Path:
        return self.raw_dir / "test.csv"

    @property
    def interim_dir(self) -> Path:
        return self.root / "data" / "interim"

    @property
    def clean_train(self) -> Path:
        return self.interim_dir / "train.parquet"

    @property
    def clean_test(self) -> Path:
        return self.interim_dir / "test.parquet"

    @property
    def processed_dir(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def features_train(self) -> Path:
        return self.processed_dir / "features_train.parquet"

    @property
    def features_test(self) -> Path:
        return self.processed_dir / "features_test.parquet"

    @property
    def oof_predictions(self) -> Path:
        return self.processed_dir / "oof_predictions.csv"

    @property
    def model_dir(self) -> Path:
        return self.root / "models" / "house_prices"

    @property
    def submission(self) -> Path:
        return self.root / "submissions" / "submission.csv"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def validation_report(self) -> Path:
        return self.reports_dir / "validation.json"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @property
    def features_metrics(self) -> Path:
        return self.metrics_dir / "features.json"

    @property
    def cv_metrics(self) -> Path:
        return self.metrics_dir / "cv.json"

    @property
    def train_metrics(self) -> Path:
        return self.metrics_dir / "train.json"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    @property
    def cv_curves(self) -> Path:
        return self.plots_dir / "cv_curves.csv"

    @property
    def cv_curves_png(self) -> Path:
        return self.plots_dir / "cv_curves.png"

    @property
    def train_curve(self) -> Path:
        return self.plots_dir / "train_curve.csv"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    # --- tuning (`kpipe tune`) -------------------------------------------------------------
    @property
    def optuna_journal(self) -> Path:
        """The default Optuna storage: a journal file (git-ignored), shareable by local workers."""
        return self.root / "optuna.journal"

    @property
    def tuned_params(self) -> Path:
        """Where `kpipe tune` writes params.yaml with the best trial's values applied."""
        return self.root / "params.tuned.yaml"
