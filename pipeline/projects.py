"""The two kinds of folder `kpipe` runs in, behind one interface: this repository (House Prices,
the flagship, with its hand-written schema, domain features and tuned ensemble) and a project
made by `kpipe new` for any other competition (competition.yaml, the inferred schema, the
generic features and members). `kpipe` asks `project_at(paths)` which one it is in and never
branches on it again: each command is a method here. A folder that is neither (no params.yaml
and dvc.yaml) is refused there, before any command can leave a file in it.

House Prices is the first instance of the interface: its facts are a `Competition` like any
other (`pipeline.house_prices.competition`), scored and submitted the same way; its stages,
tuning and blending are its own richer modules, as a competition module may provide.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.common.errors import PipelineError
from pipeline.common.paths import ProjectPaths

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from pipeline.tabular.competition import Competition
    from pipeline.tuning.study import TuneOptions


class Project(Protocol):
    paths: ProjectPaths

    @property
    def competition(self) -> Competition: ...

    def run_stage(self, name: str) -> None:
        """The stage `name` (`kpipe fetch`, ... what `dvc repro` runs)."""
        ...

    def has_stage(self, name: str) -> bool: ...

    def check_params(self) -> None:
        """Every section of params.yaml this kind of project knows, in the file's order: the one
        error line a stage would print for the first bad value (`StageParams.check`)."""
        ...

    def max_bytes(self) -> int:
        """The cap on a data file (`data.max_file_mb`)."""
        ...

    def cv_metrics(self) -> Path: ...

    @property
    def experiment(self) -> str:
        """The MLflow experiment of the project's runs."""
        ...

    @property
    def registered_model(self) -> str:
        """The registered model each `train` adds a version to (its trusted twin: `pipeline.common.registry`)."""
        ...

    def validate_submission_file(self, path: Path) -> pd.DataFrame: ...

    def runs(self, limit: int) -> pd.DataFrame: ...

    def tune(self, options: TuneOptions, status: bool) -> str: ...

    def blend(self, study: str | None, storage: str | None, keys: tuple[str, ...], repeats: int | None,
              dry_run: bool) -> str: ...

    def registered_submission(self, uri: str, output: Path | None) -> Path: ...


def default_message(project: Project) -> str:
    """`kaggle-pipeline <commit> CV <metric> <mean> ± <std>`: the leaderboard entry points back to the code."""
    from pipeline.common.provenance import git_commit

    commit = git_commit(project.paths.root)
    metric, score = project.competition.metric, ""
    if project.cv_metrics().exists():
        cv = json.loads(project.cv_metrics().read_text())
        label = "log-RMSE" if metric == "log_rmse" else metric
        score = f" CV {label} {cv[f'{metric}_mean']:.4f} ± {cv[f'{metric}_std']:.4f}"
    return f"kaggle-pipeline {commit.short if commit else 'unknown-commit'}{score}"


class NotAProject(PipelineError):
    """`kpipe` ran in a folder that is no project; every command but `kpipe new` refuses."""


def repository_sections() -> dict[str, Any]:
    """Every section of this repository's params.yaml: House Prices' and its tuning's, Fashion-MNIST's
    and the studies' (the modules of the params dataclasses only: checking costs no torch import)."""
    from pipeline.common.params import RUNTIME, BaseParams, RuntimeParams
    from pipeline.fashion.params import FashionDataParams, FashionModelList, FashionTrainParams
    from pipeline.house_prices.params import (
        CVParams,
        DataParams,
        FeatureParams,
        LightGBMParams,
        ModelParams,
        ResidualsParams,
        SklearnParams,
        TrainParams,
    )
    from pipeline.studies.params import InitStudyParams, LinregStudyParams, WeightDecayStudyParams
    from pipeline.tabular.catboost_member import CatBoostParams
    from pipeline.tuning.params import TuneParams

    return {"base": BaseParams, RUNTIME: RuntimeParams, "data": DataParams, "features": FeatureParams,
            "model": ModelParams, "train": TrainParams, "sklearn": SklearnParams, "lightgbm": LightGBMParams,
            "catboost": CatBoostParams, "cv": CVParams, "residuals": ResidualsParams, "tune": TuneParams,
            "fashion_data": FashionDataParams, "fashion_train": FashionTrainParams,
            "study_linreg": LinregStudyParams, "study_weight_decay": WeightDecayStudyParams,
            "study_init": InitStudyParams, "fashion_models": FashionModelList}


def _check_params(paths: ProjectPaths, sections: dict[str, Any]) -> None:
    from pipeline.common.params import StageParams

    StageParams(paths.params).check(sections)


def _max_bytes(paths: ProjectPaths, data_params: type) -> int:
    """`data.max_file_mb` of either kind's `data` section, in bytes."""
    from pipeline.common.params import StageParams
    from pipeline.common.readers import MB

    return int(StageParams(paths.params).key("data", "max_file_mb", data_params) * MB)


def _runs(project: Project, limit: int) -> pd.DataFrame:
    """CV runs from MLflow, best first by the metric's own direction (the same for both kinds)."""
    from pipeline.tabular.runs import cv_runs, runs_table

    competition = project.competition
    score, spread = f"metrics.{competition.metric}_mean", f"metrics.{competition.metric}_std"
    ascending = not competition.scorer.greater_is_better
    return runs_table(cv_runs(project.paths, project.experiment, score, ascending), limit, score, spread, ascending)


def _with_source(project: Project, uri: str, submission: Path) -> Path:
    """Tag the run of the MLflow model that `kpipe predict --model-uri` used with the file's SHA-1."""
    from pipeline.common.tracking import model_uri_run
    from pipeline.submissions.source import link_model_submission

    link_model_submission(project.paths, model_uri_run(project.paths, uri), submission)
    return submission


def _validated_test_ids(project: Project) -> np.ndarray:
    """The ids of the validated test table, which every submission is checked against (either kind)."""
    import pandas as pd

    from pipeline.tabular.submission import InvalidSubmission

    clean_test, id_column = project.paths.clean_test, project.competition.id_column
    if not clean_test.exists():
        raise InvalidSubmission(f"{clean_test} not found: the submission is checked against the "
                                "validated test ids, so run `dvc repro validate` first")
    return pd.read_parquet(clean_test, columns=[id_column])[id_column].to_numpy()


@dataclass(frozen=True)
class HousePricesProject:
    """This repository: House Prices' own stages, schema, tuning and blend library."""

    paths: ProjectPaths
    experiment: str = "house-prices"  # its MLflow experiment (tracking.HOUSE_PRICES_EXPERIMENT)
    registered_model: str = "house-prices"  # serving.REGISTERED_MODEL

    @property
    def competition(self) -> Competition:
        from pipeline.house_prices.competition import HOUSE_PRICES

        return HOUSE_PRICES

    def has_stage(self, name: str) -> bool:
        return importlib.util.find_spec(f"pipeline.stages.{name.replace('-', '_')}") is not None

    def check_params(self) -> None:
        _check_params(self.paths, repository_sections())

    def run_stage(self, name: str) -> None:
        importlib.import_module(f"pipeline.stages.{name.replace('-', '_')}").main()

    def max_bytes(self) -> int:
        from pipeline.house_prices.params import DataParams

        return _max_bytes(self.paths, DataParams)

    def cv_metrics(self) -> Path:
        return self.paths.cv_metrics

    def validate_submission_file(self, path: Path) -> pd.DataFrame:
        """The file as Kaggle will read it, checked against the validated test ids."""
        from pipeline.house_prices.submission import check_submission
        from pipeline.tabular.submission import read_submission

        test_ids = _validated_test_ids(self)
        return check_submission(read_submission(path, self.max_bytes()), test_ids)

    def runs(self, limit: int) -> pd.DataFrame:
        return _runs(self, limit)

    def tune(self, options: TuneOptions, status: bool) -> str:
        if status:
            from pipeline.tuning.status import study_status

            return study_status(self.paths, options.storage, options.study_name)
        from pipeline.tuning.study import run_tuning, summary

        return summary(run_tuning(self.paths, options))

    def blend(self, study: str | None, storage: str | None, keys: tuple[str, ...], repeats: int | None,
              dry_run: bool) -> str:
        from pipeline.tuning.blend_library import BlendOptions, house_prices_candidates, run_blend

        options = BlendOptions(study=study, storage=storage, keys=keys, repeats=repeats, dry_run=dry_run)
        return run_blend(self.paths, options, house_prices_candidates).report()

    def registered_submission(self, uri: str, output: Path | None) -> Path:
        from pipeline.house_prices.serving import write_registered_submission

        return _with_source(self, uri, write_registered_submission(self.paths, uri, output))


@dataclass(frozen=True)
class CompetitionProject:
    """A folder made by `kpipe new`: competition.yaml and the generic stages."""

    paths: ProjectPaths

    @property
    def competition(self) -> Competition:
        from pipeline.tabular.competition import read_competition

        return read_competition(self.paths.competition_file)

    @property
    def experiment(self) -> str:
        return self.competition.slug

    @property
    def registered_model(self) -> str:
        return self.competition.slug

    def has_stage(self, name: str) -> bool:
        from pipeline.stages.tabular import STAGES

        return name in STAGES

    def check_params(self) -> None:
        from pipeline.tabular.params import FILE_SECTIONS

        _check_params(self.paths, FILE_SECTIONS)

    def run_stage(self, name: str) -> None:
        from pipeline.stages import tabular

        tabular.main(name)

    def max_bytes(self) -> int:
        from pipeline.tabular.params import TabularDataParams

        return _max_bytes(self.paths, TabularDataParams)

    def cv_metrics(self) -> Path:
        return self.paths.competition_cv_metrics

    def validate_submission_file(self, path: Path) -> pd.DataFrame:
        """The file as Kaggle will read it, against the sample's layout and the validated test ids."""
        from pipeline.tabular.submission import check_submission, read_submission

        ids = _validated_test_ids(self)
        return check_submission(read_submission(path, self.max_bytes()), self.competition, ids)

    def runs(self, limit: int) -> pd.DataFrame:
        return _runs(self, limit)

    def tune(self, options: TuneOptions, status: bool) -> str:
        from pipeline.common.errors import PipelineError
        from pipeline.tuning.tabular import run_tabular_tuning, tabular_study_status

        if status:
            return tabular_study_status(self.paths, options)
        if options.apply or options.force:
            raise PipelineError("--apply is House Prices' for now: in a competition project, kpipe tune writes "
                                "params.tuned.yaml; copy the values you want into params.yaml")
        return run_tabular_tuning(self.paths, options).summary()

    def blend(self, study: str | None, storage: str | None, keys: tuple[str, ...], repeats: int | None,
              dry_run: bool) -> str:
        from pipeline.common.errors import PipelineError
        from pipeline.tuning.blend_library import BlendOptions, run_blend, tabular_candidates

        if study or keys or repeats is not None:
            raise PipelineError("in a competition project, kpipe blend chooses among every library entry of the "
                                "project's folds and data; --study, --key and --repeats are House Prices'")
        return run_blend(self.paths, BlendOptions(dry_run=dry_run), tabular_candidates).report()

    def registered_submission(self, uri: str, output: Path | None) -> Path:
        from pipeline.tabular.serving import write_registered_submission

        return _with_source(self, uri, write_registered_submission(self.paths, uri, output))


def project_at(paths: ProjectPaths) -> Project:
    """The project of this folder: a competition project when it holds competition.yaml, else this
    repository (House Prices). Both hold params.yaml and dvc.yaml; a folder without them is neither,
    and `kpipe` there says where to go instead of answering from an empty folder."""
    missing = [path.name for path in (paths.params, paths.dvc_yaml) if not path.is_file()]
    if missing:
        raise NotAProject(f"{paths.root} is not a kpipe project (no {' and '.join(missing)} here): cd to your "
                          "project (a clone of kaggle-pipeline, or a folder made by kpipe new), or start one: "
                          "kpipe new NAME --from ZIP")
    return CompetitionProject(paths) if paths.competition_file.is_file() else HousePricesProject(paths)

