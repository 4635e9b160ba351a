"""`kpipe tune` in a competition project: a real Optuna study of the CV score, the incumbent first,
the metric's own direction, every trial in MLflow, the best values in params.tuned.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from public_tables import penguins
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.paths import ProjectPaths
from pipeline.stages import tabular
from pipeline.tuning.study import TuneOptions
from pipeline.tuning.tabular import run_tabular_tuning


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectPaths]:
    layout = penguins(tmp_path / "download")
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(app, ["new", "penguins", "--from", str(layout.folder), "--metric", "accuracy"])
    assert made.exit_code == 0, made.output
    paths = ProjectPaths(tmp_path / "penguins")
    params = yaml.safe_load(paths.params.read_text())
    params["cv"]["folds"] = 2
    params["train"]["epochs"] = 3
    params["lightgbm"]["num_boost_round"] = 20
    params["model"]["members"] = [{"kind": "lightgbm"}, {"kind": "linear"}]
    params["tune"]["space"] = {"lightgbm.num_leaves": {"type": "int", "low": 3, "high": 31},
                               "train.hidden": {"type": "categorical", "choices": [[16, 8], [128, 64]]}}
    paths.params.write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(paths.root)
    # The stages run in this process, and mlflow.set_tracking_uri() sets the variable too: set
    # here, it is undone after the test, so no later test's subprocess logs into this store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{paths.mlflow_db}")
    tabular.fetch(paths)
    tabular.validate(paths)
    yield paths
    import mlflow

    mlflow.set_tracking_uri(None)


def test_a_study_starts_from_params_yaml_maximises_accuracy_and_writes_the_best(project: ProjectPaths) -> None:
    outcome = run_tabular_tuning(project, TuneOptions(n_trials=3))
    study = outcome.study
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.trials[0].params == {"lightgbm.num_leaves": 31, "train.hidden": "128,64"}  # the incumbent
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 3
    assert outcome.incumbent == study.trials[0].value
    tuned = yaml.safe_load(project.tuned_params.read_text())
    assert tuned["lightgbm"]["num_leaves"] == study.best_trial.params["lightgbm.num_leaves"]
    assert isinstance(tuned["train"]["hidden"], list)
    assert "best CV accuracy" in outcome.summary()

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project.mlflow_db}")
    runs = mlflow.search_runs(experiment_names=["penguins"], filter_string="tags.stage = 'tune'")
    assert len(runs) == 3 and runs["metrics.accuracy_mean"].notna().all()


def test_a_second_worker_joins_the_same_study_and_status_shows_both(project: ProjectPaths) -> None:
    run_tabular_tuning(project, TuneOptions(n_trials=1))
    outcome = run_tabular_tuning(project, TuneOptions(n_trials=1, sampler_seed=1))
    assert len(outcome.study.trials) == 2
    assert (project.root / "optuna.journal").exists()

    shown = CliRunner().invoke(app, ["tune", "--status"])
    assert shown.exit_code == 0, shown.output
    best = outcome.study.best_trial  # accuracy: the highest, in the study's own direction
    assert "study 'penguins' in " in shown.output and "2 trials: 2 complete" in shown.output
    assert f"best: trial {best.number}, CV accuracy {best.value:.5f}" in shown.output
    assert "lightgbm.num_leaves = " in shown.output
    assert "unknown" not in shown.output  # every trial names the worker (host:pid) that ran it


def _set(paths: ProjectPaths, **sections: object) -> None:
    params = yaml.safe_load(paths.params.read_text())
    params.update(sections)
    paths.params.write_text(yaml.safe_dump(params, sort_keys=False))


def test_kpipe_blend_writes_a_better_blend_of_library_members_and_then_refuses_to_move(
        project: ProjectPaths) -> None:
    import pandas as pd

    from pipeline.common.params import read_params
    from pipeline.tabular.competition import read_competition
    from pipeline.tabular.hooks import Hooks
    from pipeline.tabular.library import MemberLibrary
    from pipeline.tabular.members import FAMILIES
    from pipeline.tabular.modeling import Problem, cross_validate
    from pipeline.tabular.params import parse_tabular
    from pipeline.tuning.blend_library import BlendOptions, run_blend, tabular_candidates

    problem = Problem.of(read_competition(project.competition_file), Hooks())
    train, test = pd.read_parquet(project.clean_train), pd.read_parquet(project.clean_test)
    library = MemberLibrary.for_project(project.root)

    def cv() -> object:
        return cross_validate(problem, parse_tabular(read_params(project.params), tuple(FAMILIES)), train, test,
                              library)

    _set(project, model={"blend": "mean", "members": [{"kind": "lightgbm"}, {"kind": "sklearn"}]})
    good = cv()  # two good members into the library
    _set(project, model={"blend": "mean", "members": [{"kind": "linear", "train.epochs": 1, "train.lr": 0.0001}]})
    weak = cv()
    assert weak.mean < good.mean

    outcome = run_blend(project, BlendOptions(), tabular_candidates)
    assert outcome.written == project.params, outcome.report()
    model = yaml.safe_load(project.params.read_text())["model"]
    chosen = model["members"]
    assert model["blend"] == outcome.choice.kind and len(chosen) == len(outcome.choice.selected) >= 2
    assert {m["kind"] for m in chosen} <= {"lightgbm", "sklearn", "linear"}
    again = cv()
    assert again.hits == len(chosen)  # the written members are the library's entries, not new ones
    assert again.mean > weak.mean

    second = run_blend(project, BlendOptions(), tabular_candidates)
    assert second.written is None and "not better by more than the noise" in second.report()


def test_the_commands_in_a_competition_project_as_documented(project: ProjectPaths) -> None:
    """`kpipe tune`, `kpipe oof`, `kpipe blend --dry-run` and `kpipe predict --model-uri`, as
    docs/new-competition.md shows them (in this process: the CLI is the same code)."""
    runner = CliRunner()
    tuned = runner.invoke(app, ["tune", "--n-trials", "1"])
    assert tuned.exit_code == 0 and "best CV accuracy" in tuned.output, tuned.output
    assert project.tuned_params.exists()
    listed = runner.invoke(app, ["oof"])
    assert listed.exit_code == 0 and "entries in" in listed.output, listed.output
    chosen = runner.invoke(app, ["blend", "--dry-run"])
    assert chosen.exit_code == 0 and "candidates from the OOF library" in chosen.output, chosen.output
    for stage in ("cv", "train"):
        assert runner.invoke(app, [stage]).exit_code == 0
    served = runner.invoke(app, ["predict", "--model-uri", "models:/penguins/latest"])
    assert served.exit_code == 0, served.output
    assert project.submission_from("models:/penguins/latest").exists()
