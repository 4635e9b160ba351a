"""Every file the pipeline reads or writes, derived from one project root.

`dvc.yaml` mirrors these paths in its `deps`/`outs`; `tests/test_dvc_contract.py` checks
that the two agree. Nothing here touches the disk at import time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProjectPaths:
    """Paths of one checkout. Stages run at the project root (DVC's working directory)."""

    root: Path

    @classmethod
    def here(cls) -> ProjectPaths:
        return cls(Path.cwd())

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def dvc_yaml(self) -> Path:
        """The pipeline's stages; with params.yaml, what makes a folder a project (`projects.project_at`)."""
        return self.root / "dvc.yaml"

    # --- house prices -------------------------------------------------------------------
    @property
    def bundled_archive(self) -> Path:
        """Kaggle's download archive, committed with the project: the default data source."""
        return self.root / "data" / "external" / "house-prices-advanced-regression-techniques.zip"

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
    def submission_log(self) -> Path:
        """Every Kaggle submission, one row each (pipeline/submissions/log.py); committed."""
        return self.root / "submissions" / "log.csv"

    @property
    def leaderboard_png(self) -> Path:
        """`kpipe leaderboard`'s picture: CV against the public score."""
        return self.plots_dir / "leaderboard.png"

    def submission_from(self, model_uri: str) -> Path:
        """`kpipe predict --model-uri models:/house-prices/3` writes submissions/submission-house-prices-3.csv
        (beside the DVC-tracked submission.csv, which it leaves alone)."""
        slug = re.sub(r"[^A-Za-z0-9.]+", "-", model_uri.removeprefix("models:/")).strip("-")
        return self.submission.with_name(f"submission-{slug}.csv")

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
    def house_metrics_dir(self) -> Path:
        """Metrics are committed (`cache: false`), one folder per pipeline, so that
        `dvc metrics show metrics/house_prices` and `dvc metrics diff` read well."""
        return self.metrics_dir / "house_prices"

    @property
    def features_metrics(self) -> Path:
        return self.house_metrics_dir / "features.json"

    @property
    def cv_metrics(self) -> Path:
        return self.house_metrics_dir / "cv.json"

    @property
    def train_metrics(self) -> Path:
        return self.house_metrics_dir / "train.json"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    @property
    def house_plots_dir(self) -> Path:
        return self.plots_dir / "house_prices"

    @property
    def cv_curves_dir(self) -> Path:
        """One CSV per model (`mlp.csv`, or `member0-mlp.csv`, ... for an ensemble)."""
        return self.house_plots_dir / "cv_curves"

    def cv_curves(self, model: str) -> Path:
        return self.cv_curves_dir / f"{model}.csv"

    @property
    def cv_curves_png(self) -> Path:
        return self.house_plots_dir / "cv_curves.png"

    @property
    def train_curves_dir(self) -> Path:
        return self.house_plots_dir / "train_curves"

    @property
    def train_curves_png(self) -> Path:
        return self.house_plots_dir / "train_curves.png"

    @property
    def residuals_metrics(self) -> Path:
        return self.house_metrics_dir / "residuals.json"

    @property
    def residuals_dir(self) -> Path:
        """The error tables (committed CSVs): the worst houses and one file per breakdown."""
        return self.house_plots_dir / "residuals"

    @property
    def worst_houses(self) -> Path:
        return self.residuals_dir / "worst_houses.csv"

    def residuals_by(self, column: str) -> Path:
        return self.residuals_dir / f"by_{column.lower()}.csv"

    @property
    def residuals_png(self) -> Path:
        return self.house_plots_dir / "residuals.png"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    # --- any competition (`kpipe new`) -----------------------------------------------------
    @property
    def competition_file(self) -> Path:
        """The competition's facts (pipeline.tabular.competition); its presence makes a project generic."""
        return self.root / "competition.yaml"

    @property
    def schema_file(self) -> Path:
        """The pandera schema `kpipe new` inferred (pipeline.tabular.schema), for a person to tighten."""
        return self.root / "schema.yaml"

    @property
    def external_dir(self) -> Path:
        """Kaggle's files as `kpipe new` found them (git-ignored: Kaggle's rules)."""
        return self.root / "data" / "external"

    @property
    def raw_sample(self) -> Path:
        return self.raw_dir / "sample_submission.csv"

    @property
    def blend_model_dir(self) -> Path:
        return self.root / "models" / "blend"

    @property
    def competition_metrics_dir(self) -> Path:
        return self.metrics_dir / "competition"

    @property
    def competition_cv_metrics(self) -> Path:
        return self.competition_metrics_dir / "cv.json"

    @property
    def competition_train_metrics(self) -> Path:
        return self.competition_metrics_dir / "train.json"

    @property
    def competition_plots_dir(self) -> Path:
        return self.plots_dir / "competition"

    @property
    def competition_cv_png(self) -> Path:
        return self.competition_plots_dir / "cv.png"

    @property
    def competition_residuals_dir(self) -> Path:
        """The error tables of a competition project: the worst rows and one file per breakdown."""
        return self.competition_plots_dir / "residuals"

    @property
    def competition_residuals_metrics(self) -> Path:
        return self.competition_metrics_dir / "residuals.json"

    @property
    def competition_residuals_png(self) -> Path:
        return self.competition_plots_dir / "residuals.png"

    # --- Fashion-MNIST ------------------------------------------------------------------
    @property
    def fashion_data_dir(self) -> Path:
        return self.root / "data" / "fashion"

    @property
    def fashion_raw_dir(self) -> Path:
        """The four verified `*-ubyte.gz` files, exactly as fetched."""
        return self.fashion_data_dir / "raw"

    @property
    def fashion_arrays(self) -> Path:
        """All four arrays in one compressed `.npz`: what training reads."""
        return self.fashion_data_dir / "fashion_mnist.npz"

    @property
    def fashion_metrics_dir(self) -> Path:
        return self.metrics_dir / "fashion"

    def fashion_metrics(self, model: str) -> Path:
        return self.fashion_metrics_dir / f"{model}.json"

    @property
    def fashion_plots_dir(self) -> Path:
        return self.plots_dir / "fashion"

    @property
    def fashion_curves_dir(self) -> Path:
        """One CSV per model: `dvc.yaml`'s top-level plot draws the folder, whatever the models."""
        return self.fashion_plots_dir / "curves"

    def fashion_curves(self, model: str) -> Path:
        """Per-epoch train loss / train accuracy / test accuracy / seconds (a DVC plot)."""
        return self.fashion_curves_dir / f"{model}.csv"

    def fashion_curves_png(self, model: str) -> Path:
        return self.fashion_plots_dir / "pictures" / f"{model}_curves.png"

    def fashion_predictions_png(self, model: str) -> Path:
        return self.fashion_plots_dir / "pictures" / f"{model}_predictions.png"

    # --- chapter studies ----------------------------------------------------------------
    @property
    def studies_metrics_dir(self) -> Path:
        return self.metrics_dir / "studies"

    def study_metrics(self, study: str) -> Path:
        return self.studies_metrics_dir / f"{study}.json"

    @property
    def studies_plots_dir(self) -> Path:
        return self.plots_dir / "studies"

    def study_curves(self, study: str) -> Path:
        return self.studies_plots_dir / f"{study}_curves.csv"

    def study_png(self, study: str) -> Path:
        return self.studies_plots_dir / f"{study}.png"

    # --- tuning (`kpipe tune`) -------------------------------------------------------------
    @property
    def optuna_journal(self) -> Path:
        """The default Optuna storage: a journal file (git-ignored), shareable by local workers."""
        return self.root / "optuna.journal"

    @property
    def tuned_params(self) -> Path:
        """Where `kpipe tune` writes params.yaml with the best trial's values applied."""
        return self.root / "params.tuned.yaml"
