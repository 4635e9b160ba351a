"""`kpipe tune`: a strict search space, a study that survives bad trials, shared storages, MLflow
children, and best params written back as a params file the stages accept."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.params import ParamsError, read_params, with_overrides
from pipeline.common.params_edit import write_params
from pipeline.common.paths import ProjectPaths
from pipeline.common.tracking import RunRecord, open_run
from pipeline.house_prices.experiment import parse_experiment, run_cv
from pipeline.tuning.space import parse_space
from pipeline.tuning.study import TuneOptions, load_tune, make_objective, optimize, run_tuning

ROOT = Path(__file__).resolve().parents[1]
RAW = read_params(ROOT / "params.yaml")
# Small enough for a trial to take well under a second on 300 rows and 2 folds.
SMALL_SPACE = {
    "train.lr": {"type": "float", "low": 0.002, "high": 0.01, "log": True},
    "train.epochs": {"type": "int", "low": 3, "high": 5},
    "model.kind": {"type": "categorical", "choices": ["linear", "mlp"]},
    "model.hidden": {"type": "categorical", "choices": [[16], [16, 8]]},
}

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TQDM_DISABLE", "1")  # reaches the worker subprocesses


@pytest.fixture
def small(clean_frames: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = clean_frames
    return train.head(300), test.head(300)


@pytest.fixture
def tune_repo(repo_copy: Path, small: tuple[pd.DataFrame, pd.DataFrame]) -> Path:
    """A repo copy with small validated data and a small, fast study in its params.yaml."""
    paths = ProjectPaths(repo_copy)
    paths.interim_dir.mkdir(parents=True, exist_ok=True)
    small[0].to_parquet(paths.clean_train)
    small[1].to_parquet(paths.clean_test)
    # The incumbent: a fast single model with a learning rate too low to learn much, so that any
    # trial of the space beats it and the tests below know which way the comparison goes.
    # Every trial draws every key (no groups): a trial that varied only `model.kind` would keep
    # the hopeless learning rate, and the tests below rely on every trial beating the incumbent.
    write_params(paths.params, {"cv.folds": 2, "tune.space": SMALL_SPACE, "tune.pruner_startup_trials": 2,
                                "tune.pruner_warmup_percent": 1, "model.kind": "linear", "train.epochs": 3,
                                "train.lr": 1.0e-05, "tune.one_group_per_trial": False}, paths.params)
    return repo_copy


@pytest.fixture
def quick_repo(tune_repo: Path) -> Path:
    """`tune_repo` whose trials score one repeat of the 2 folds (`tune.cv_repeats: 1`), for the tests
    of shared storages and of the blend library, where the repeats are not what is tested (the
    tiny study checks that trials use `tune.cv_repeats`)."""
    write_params(tune_repo / "params.yaml", {"tune.cv_repeats": 1}, tune_repo / "params.yaml")
    return tune_repo


# --- the search space -----------------------------------------------------------------------

def test_the_shipped_search_space_parses() -> None:
    tune, space = load_tune(RAW)
    assert [d.key for d in space.dimensions] == list(RAW["tune"]["space"])
    assert tune.storage == "" and tune.n_trials >= 1


@pytest.mark.parametrize(("key", "spec", "message"), [
    ("train.lrr", {"type": "float", "low": 0.1, "high": 1.0}, r"tune\.space\.train\.lrr: 'train\.lrr' is not a key"),
    ("lr", {"type": "float", "low": 0.1, "high": 1.0}, "dotted params keys"),
    ("train", {"type": "float", "low": 0.1, "high": 1.0}, "dotted params keys"),
    ("data.verify", {"type": "categorical", "choices": [True, False]}, "does not change the CV score"),
    ("train.lr", {"type": "uniform", "low": 0.1, "high": 1.0},
     r"tune\.space\.train\.lr\.type='uniform': choose one of"),
    ("train.lr", {"type": "float", "low": 0.1, "high": 1.0, "scale": "log"}, r"train\.lr: unknown key\(s\) scale"),
    ("train.lr", {"type": "float", "low": 0.1}, r"train\.lr: missing key\(s\) high"),
    ("train.lr", {"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log range needs low > 0"),
    ("train.epochs", {"type": "int", "low": 5, "high": 2.5}, r"train\.epochs\.high=2\.5: expected an integer"),
    ("model.kind", {"type": "categorical", "choices": ["linear", "svm"]}, r"'svm' is not valid for model\.kind"),
    ("model.hidden", {"type": "categorical", "choices": [[64], [[64]]]}, "may only hold scalars"),
])
def test_a_bad_space_entry_names_its_key(key: str, spec: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        parse_space({key: spec}, RAW)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # BruteForceSampler
def test_list_choices_are_strings_for_optuna_and_lists_again_after_storage(tmp_path: Path) -> None:
    space = parse_space({"model.hidden": {"type": "categorical", "choices": [[64], [128, 64], []]},
                         "features.log_skewed": {"type": "categorical", "choices": [True, False]}}, RAW)
    journal = str(tmp_path / "study.journal")
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(journal)), study_name="s",
                                sampler=optuna.samplers.BruteForceSampler())
    seen = []
    study.optimize(lambda trial: seen.append(space.suggest(trial)) or 0.0, n_trials=6)

    assert {tuple(s["model.hidden"]) for s in seen} == {(64,), (128, 64), ()}
    reloaded = optuna.load_study(storage=JournalStorage(JournalFileBackend(journal)), study_name="s")
    stored = [t.params for t in reloaded.trials]
    assert {p["model.hidden"] for p in stored} == {"64", "128,64", ""}
    assert sorted((tuple(o["model.hidden"]), o["features.log_skewed"]) for o in map(space.decode, stored)) == \
        sorted((tuple(s["model.hidden"]), s["features.log_skewed"]) for s in seen)
    assert all(isinstance(space.decode(p)["model.hidden"], list) for p in stored)


# --- studies --------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")  # the point of the test
def test_diverging_trials_fail_and_the_study_goes_on(small: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    # One torch model (the ensemble's first member alone): the trials that diverge stop in it, and
    # the sound one need not train the other seven members to complete.
    raw = {**RAW, "cv": {**RAW["cv"], "folds": 2}, "train": {**RAW["train"], "epochs": 3},
           "model": {**RAW["model"], "kind": "mlp", "members": []}}
    space = parse_space({"train.lr": {"type": "categorical", "choices": [0.004, 1000.0, 1e30]}}, raw)
    study = optuna.create_study()
    for lr in (1e30, 1000.0, 0.004):  # NaN from the first epoch; finite per epoch but inf prices at the end
        study.enqueue_trial({"train.lr": lr})
    optimize(study, make_objective(raw, space, *small), n_trials=3, timeout_s=None, n_jobs=1)

    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert all("Diverged" in t.user_attrs["error"] for t in study.trials[:2])
    assert study.best_trial.number == 2 and math.isfinite(study.best_value)


def test_long_trials_report_each_percent_step_once(small: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    raw = {**RAW, "cv": {**RAW["cv"], "folds": 2}, "model": {**RAW["model"], "kind": "linear", "members": []},
           "train": {**RAW["train"], "epochs": 150, "batch_size": 256}}
    space = parse_space({"train.lr": {"type": "categorical", "choices": [0.004]}}, raw)
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns when a step is reported twice
        optimize(study, make_objective(raw, space, *small), n_trials=1, timeout_s=None, n_jobs=1)
    assert sorted(study.trials[0].intermediate_values) == list(range(1, 101))


def test_a_tiny_study_writes_params_the_stages_accept(tune_repo: Path, mlflow_uri: str) -> None:
    paths = ProjectPaths(tune_repo)
    outcome = run_tuning(paths, TuneOptions(n_trials=3))

    # trial 0 is params.yaml itself, scored first on the same folds; three searched trials follow
    incumbent = outcome.study.trials[0]
    assert incumbent.user_attrs["incumbent"] and incumbent.params == {} and len(outcome.study.trials) == 4
    repeats_of_trials = read_params(paths.params)["tune"]["cv_repeats"]
    assert len(incumbent.user_attrs["fold_scores"]) == 2 * repeats_of_trials and outcome.verdict.incumbent.number == 0
    assert outcome.verdict.better and outcome.verdict.delta < 0
    assert outcome.written == paths.tuned_params and paths.optuna_journal.exists()
    tuned = read_params(paths.tuned_params)
    params = parse_experiment(tuned)
    assert params.train.lr == outcome.best.params["train.lr"]
    assert list(params.model.hidden) == outcome.best_overrides["model.hidden"]
    assert params.cv.folds == 2 and tuned["tune"] == read_params(paths.params)["tune"]
    assert outcome.best.value == min(t.value for t in outcome.study.trials if t.state == TrialState.COMPLETE)
    # Trials are scored on tune.cv_repeats repeats of the folds; the file keeps the project's cv.repeats.
    repeats = tuned["tune"]["cv_repeats"]
    assert params.cv.repeats == 1 < repeats
    frames = [pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)]
    rescored = run_cv(parse_experiment(with_overrides(tuned, {"cv.repeats": repeats})), *frames)
    assert len(rescored.fold_scores) == repeats * 2 and rescored.mean == pytest.approx(outcome.best.value, rel=1e-4)

    # each trial is a nested run of one "tune" parent, with its state and its per-epoch curve
    mlflow.set_tracking_uri(mlflow_uri)
    parents = mlflow.search_runs(experiment_names=["house-prices"], filter_string="tags.stage = 'tune'")
    assert len(parents) == 1 and parents["metrics.best_log_rmse"].iloc[0] == pytest.approx(outcome.best.value)
    children = mlflow.search_runs(experiment_names=["house-prices"],
                                  filter_string=f"tags.mlflow.parentRunId = '{parents['run_id'].iloc[0]}'")
    assert sorted(children["tags.optuna.trial"].astype(int)) == [0, 1, 2, 3]  # the incumbent too
    assert children.loc[children["tags.optuna.trial"] == "0", "tags.optuna.incumbent"].tolist() == ["true"]
    best = children[children["tags.optuna.trial"] == str(outcome.best.number)].iloc[0]
    assert best["tags.optuna.state"] == "COMPLETE"
    assert best["metrics.log_rmse_mean"] == pytest.approx(outcome.best.value)
    assert best["metrics.log_rmse_vs_incumbent"] == pytest.approx(outcome.best.value - incumbent.value)
    assert best["params.model.hidden"] == ",".join(map(str, outcome.best_overrides["model.hidden"]))
    # what the pruner saw: the percent of epochs done (1..99), then the member's CV mean at step 100
    curve = mlflow.tracking.MlflowClient().get_metric_history(best["run_id"], "pruning_log_rmse")
    assert sorted(m.step for m in curve) == sorted(outcome.best.intermediate_values)
    assert max(m.step for m in curve) == 100
    assert {m.step: m.value for m in curve}[100] == pytest.approx(outcome.best.value)


def test_apply_with_threads_rewrites_params_yaml_and_keeps_its_comments(tune_repo: Path, mlflow_uri: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    before = (tune_repo / "params.yaml").read_text()
    monkeypatch.chdir(tune_repo)
    result = CliRunner().invoke(app, ["tune", "--n-trials", "4", "--n-jobs", "2", "--storage", "sqlite:///tune.db",
                                      "--apply"])
    assert result.exit_code == 0, result.output
    assert "written to" in result.output and "dvc exp run -S" in result.output
    assert "better by more than the fold noise" in result.output

    after = (tune_repo / "params.yaml").read_text()
    comments = [line[line.index("#"):] for line in before.splitlines() if "#" in line]
    assert comments and all(c in after for c in comments)
    # Still in the layout `dvc exp run -S` writes: a -S that changes nothing leaves it as it is.
    from dvc.utils.hydra import apply_overrides

    copy = tune_repo / "params.copy.yaml"
    copy.write_text(after)
    apply_overrides(copy, ["base.seed=42"])
    assert copy.read_text() == after
    study = optuna.load_study(study_name="house-prices", storage="sqlite:///tune.db")
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3, 4]  # the incumbent, then two threads
    assert read_params(tune_repo / "params.yaml")["train"]["lr"] == study.best_params["train.lr"]
    assert not (tune_repo / "params.tuned.yaml").exists()


def test_tune_without_validated_data_says_to_run_validate(repo_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo_copy)
    result = CliRunner().invoke(app, ["tune", "--n-trials", "1"])
    assert result.exit_code == 1 and "dvc repro validate" in result.output


@pytest.mark.e2e  # worker processes running the whole CLI
@pytest.mark.parametrize("storage", ["workers.journal", "sqlite:///workers.db"])
def test_two_worker_processes_share_one_study(quick_repo: Path, mlflow_uri: str, storage: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(quick_repo)}  # the copy's own code, not an installed one
    workers = [subprocess.Popen([sys.executable, "-m", "pipeline.cli", "tune", "--n-trials", "2",
                                 "--storage", storage, "--study-name", "shared", "--sampler-seed", str(seed)],
                                cwd=quick_repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for seed in (1, 2)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(outputs)

    file = quick_repo / storage.removeprefix("sqlite:///")  # relative to the workers' directory
    url = f"sqlite:///{file}" if "://" in storage else JournalStorage(JournalFileBackend(str(file)))
    study = optuna.load_study(study_name="shared", storage=url)
    searched = [t for t in study.trials if "incumbent" not in t.user_attrs]
    assert len(searched) == 4 and len({t.number for t in study.trials}) == len(study.trials)
    assert 1 <= len(study.trials) - len(searched) <= 2  # workers starting together may both score it
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    for output in outputs:  # each worker ran its own 2 trials
        assert output.count("] Trial ") == 2, output


def test_an_unusable_storage_url_is_a_clear_error(tune_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tune_repo)
    result = CliRunner().invoke(app, ["tune", "--n-trials", "1", "--storage", "nosuchdb://host/optuna"])
    assert result.exit_code == 1 and "cannot open the Optuna storage 'nosuchdb://host/optuna'" in result.output


def test_a_broken_tracking_store_leaves_the_parent_run_a_warning_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")
    with (caplog.at_level(logging.WARNING),
          open_run(ProjectPaths(tmp_path), "house-prices", RunRecord("tune")) as parent):
        assert parent.log_child(RunRecord("trial-0")) is None
        ran = True
    assert ran and "MLflow tracking failed" in caplog.text


def test_apply_refuses_a_result_that_does_not_beat_params_yaml(tune_repo: Path, mlflow_uri: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A good incumbent and a space of hopeless learning rates: params.yaml stays, and says why."""
    paths = ProjectPaths(tune_repo)
    write_params(paths.params, {"train.lr": 0.01, "train.epochs": 5,
                                "tune.space": {"train.lr": {"type": "float", "low": 1e-7, "high": 2e-7}}},
                 paths.params)
    before = paths.params.read_text()
    monkeypatch.chdir(tune_repo)
    result = CliRunner().invoke(app, ["tune", "--n-trials", "2", "--apply"])
    assert result.exit_code == 0, result.output
    assert "no trial beat the incumbent" in result.output and "params.yaml left as it is" not in result.output
    assert "nothing written: params.yaml is still the best this study knows" in result.output
    assert paths.params.read_text() == before



@pytest.mark.parametrize(("best_folds", "better"), [
    ([0.110, 0.120, 0.100], True),   # better on every fold: far beyond the noise
    ([0.119, 0.111, 0.1095], False),  # better on average, worse on a fold: within the noise
])
def test_a_result_is_better_only_beyond_the_paired_fold_noise(best_folds: list[float], better: bool) -> None:
    from optuna.trial import create_trial

    from pipeline.tuning.incumbent import judge

    incumbent = create_trial(value=0.115, params={}, distributions={},
                             user_attrs={"incumbent": "abc", "fold_scores": [0.115, 0.125, 0.105]})
    best = create_trial(value=float(np.mean(best_folds)), params={}, distributions={},
                        user_attrs={"fold_scores": best_folds})
    verdict = judge(best, incumbent)
    diffs = np.array(best_folds) - [0.115, 0.125, 0.105]
    assert verdict.noise == pytest.approx(np.std(diffs, ddof=1) / np.sqrt(3))
    assert verdict.better is better
    assert ("better by more than the fold noise" in verdict.explain()) is better


def test_member_keys_tune_one_member_of_the_ensemble(tune_repo: Path) -> None:
    """`model.members[1].train.lr`: a slot in that member's overrides, applied and written back."""
    from pipeline.common.params import with_overrides

    raw = with_overrides(RAW, {"model.members[1].train.lr": 0.002})
    params = parse_experiment(raw)
    assert params.members[1].train.lr == 0.002 and params.members[0].train.lr == RAW["train"]["lr"]
    space = parse_space({"model.members[1].train.lr": {"type": "float", "low": 0.001, "high": 0.01}}, RAW)
    assert [d.key for d in space.dimensions] == ["model.members[1].train.lr"]
    with pytest.raises(ParamsError, match="no member 9"):
        parse_space({"model.members[9].train.lr": {"type": "float", "low": 0.001, "high": 0.01}}, RAW)
    with pytest.raises(ParamsError, match="no key 'lr_typo'"):
        with_overrides(RAW, {"model.members[1].train.lr_typo": 0.1})
    dest = tune_repo / "members.yaml"
    write_params(tune_repo / "params.yaml", {"model.members[1].train.lr": 0.002}, dest)
    assert read_params(dest)["model"]["members"][1]["train.lr"] == 0.002


# --- ensembles: pruning and the OOF library -------------------------------------------------

ENSEMBLE = {"model.kind": "ensemble", "model.blend": "greedy", "cv.folds": 2, "cv.repeats": 1, "train.epochs": 10,
            "model.members": [{"model.kind": "mlp", "model.hidden": [16]},
                              {"model.kind": "sklearn", "sklearn.estimator": "lasso"}]}


def test_a_clearly_bad_ensemble_trial_is_pruned_before_its_last_member(small, tmp_path: Path) -> None:
    """Three sound learning rates, then one too low to learn: the pruner compares the bad trial's
    torch member, epoch by epoch, with the earlier trials' and stops it inside that member's
    training, so the lasso member's folds never run."""
    from pipeline.tabular.oof_library import OOFLibrary

    raw = with_overrides(RAW, ENSEMBLE)
    space = parse_space({"model.members[0].train.lr": {"type": "float", "low": 1e-7, "high": 0.01, "log": True}}, raw)
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5))
    for lr in (0.004, 0.005, 0.006, 1e-7):
        study.enqueue_trial({"model.members[0].train.lr": lr})
    library = OOFLibrary(tmp_path / "oof")
    optimize(study, make_objective(raw, space, *small, library=library), n_trials=4, timeout_s=None, n_jobs=1)

    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED]
    bad = study.trials[3]
    assert max(bad.intermediate_values) < 100  # stopped inside member 0's epochs
    assert all(max(t.intermediate_values) == 200 for t in study.trials[:3])  # both members reported
    # the lasso member, the same in every trial, was computed once and read by the next two trials
    assert [t.user_attrs["library_hits"] for t in study.trials[:3]] == [0, 1, 1]
    assert len(library.entries()) == 4  # three torch members and one lasso: nothing of the pruned trial


def test_one_group_per_trial_varies_one_member_and_leaves_the_others_at_params_yaml(small) -> None:
    from pipeline.tuning.space import GROUP

    raw = with_overrides(RAW, ENSEMBLE)
    space = parse_space({"model.members[0].train.lr": {"type": "float", "low": 0.001, "high": 0.01},
                         "model.members[1].sklearn.lasso.alpha": {"type": "float", "low": 0.0001, "high": 0.01},
                         "features.derived": {"type": "categorical", "choices": [True, False]}}, raw,
                        one_group_per_trial=True)
    assert space.groups == ("member0", "member1", "features")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: len(space.suggest(trial)), n_trials=12)
    assert {t.value for t in study.trials} == {1.0}  # one dimension of one group each time
    assert {t.params[GROUP] for t in study.trials} == set(space.groups)
    assert all(GROUP not in space.decode(t.params) for t in study.trials)


def _fill_library(repo: Path, *members: dict) -> None:
    """Cross-validate single models into the repo's OOF library on the study's fold plan."""
    from pipeline.tabular.oof_library import OOFLibrary

    paths = ProjectPaths(repo)
    raw = read_params(paths.params)
    frames = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    for member in members:
        run_cv(parse_experiment(with_overrides(raw, {"cv.repeats": raw["tune"]["cv_repeats"], **member})), *frames,
               library=OOFLibrary.for_project(repo))


def test_kpipe_blend_refuses_a_blend_that_does_not_beat_params_yaml(quick_repo: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(quick_repo)
    _fill_library(quick_repo, {"train.lr": 1.0e-07})  # a candidate even worse than the incumbent
    before = (quick_repo / "params.yaml").read_text()
    result = CliRunner().invoke(app, ["blend"])
    assert result.exit_code == 0, result.output
    assert "2 candidates from the OOF library" in result.output
    assert "not better by more than the noise; params.yaml left as it is" in result.output
    assert (quick_repo / "params.yaml").read_text() == before


def test_kpipe_blend_writes_a_better_blend_as_members_that_reproduce_its_entries(
        quick_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.tabular.oof_library import OOFLibrary

    monkeypatch.chdir(quick_repo)
    lasso = {"model.kind": "sklearn", "sklearn.estimator": "lasso"}
    svr = {"model.kind": "sklearn", "sklearn.estimator": "svr"}
    _fill_library(quick_repo, lasso, svr)
    dry = CliRunner().invoke(app, ["blend", "--dry-run"])
    assert dry.exit_code == 0 and "better (--dry-run: nothing written)" in dry.output
    # --key: these entries only (beside the incumbent's own members), by the prefixes `kpipe oof` shows
    lasso_key = next(e.key for e in OOFLibrary.for_project(quick_repo).entries()
                     if e.manifest["member"] == "sklearn/lasso")
    listed = CliRunner().invoke(app, ["blend", "--key", lasso_key[:10], "--dry-run"])
    assert listed.exit_code == 0 and "2 candidates from the OOF library" in listed.output, listed.output
    unknown = CliRunner().invoke(app, ["blend", "--key", "ffffffffff", "--dry-run"])
    assert unknown.exit_code == 1 and "has the key 'ffffffffff': `kpipe oof` lists" in unknown.output
    result = CliRunner().invoke(app, ["blend"])
    assert result.exit_code == 0, result.output
    assert "better; written to" in result.output

    written = read_params(quick_repo / "params.yaml")
    assert written["model"]["kind"] == "ensemble" and written["model"]["blend"] in ("mean", "greedy")
    kinds = [m["model.kind"] for m in written["model"]["members"]]
    assert "sklearn" in kinds
    assert "# The one home of hyperparameters" in (quick_repo / "params.yaml").read_text()
    # The written members are exactly library entries: their CV on the study's folds is all reads.
    paths = ProjectPaths(quick_repo)
    frames = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    rescored = run_cv(parse_experiment(with_overrides(written, {"cv.repeats": written["tune"]["cv_repeats"]})),
                      *frames, library=OOFLibrary.for_project(quick_repo))
    assert rescored.hits == len(kinds)


def test_kpipe_blend_chooses_among_the_members_of_one_studys_trials(quick_repo: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`--study`: the candidates are the members the study's trials cross-validated (their
    `oof_keys`), not every library entry."""
    from pipeline.tabular.oof_library import OOFLibrary
    from pipeline.tuning.study import MEMBER_KEYS, trial_params

    monkeypatch.chdir(quick_repo)
    paths = ProjectPaths(quick_repo)
    _fill_library(quick_repo, {"model.kind": "sklearn", "sklearn.estimator": "ridge"})  # in the library, not the study
    raw = trial_params(read_params(paths.params), load_tune(read_params(paths.params))[0])
    space = parse_space({"sklearn.lasso.alpha": {"type": "float", "low": 0.0003, "high": 0.003, "log": True}},
                        with_overrides(raw, {"model.kind": "sklearn"}))
    journal = quick_repo / "blend-study.journal"
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(journal))), study_name="lassos")
    frames = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    optimize(study, make_objective(with_overrides(raw, {"model.kind": "sklearn"}), space, *frames,
                                   library=OOFLibrary.for_project(quick_repo)), n_trials=2, timeout_s=None, n_jobs=1)
    assert all(len(t.user_attrs[MEMBER_KEYS]) == 1 for t in study.trials)

    result = CliRunner().invoke(app, ["blend", "--study", "lassos", "--storage", str(journal), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "3 candidates from the OOF library" in result.output  # the incumbent's member and the two trials'
    assert "sklearn/ridge" not in result.output
    missing = CliRunner().invoke(app, ["blend", "--study", "nope", "--storage", str(journal)])
    assert missing.exit_code == 1 and "no study 'nope'" in missing.output
