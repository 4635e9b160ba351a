"""The stages of a competition project (`kpipe new`): fetch, validate, cv, train, predict, residuals.

`python -m pipeline.stages.tabular STAGE` is what the project's dvc.yaml runs, and what
`kpipe STAGE` runs in a folder holding competition.yaml. Each stage is thin wiring over
`pipeline.tabular`; every run is tracked in MLflow under the competition's slug.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.common.io import ensure_writable, write_frame, write_json
from pipeline.common.params import StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.readers import MB, read_csv_table
from pipeline.stages import run_stage
from pipeline.tabular.competition import Competition, read_competition
from pipeline.tabular.params import TabularDataParams

if TYPE_CHECKING:
    import numpy as np

    from pipeline.tabular.modeling import Problem
    from pipeline.tabular.params import TabularExperiment

# fetch and validate import only what they use (no torch, no MLflow): on a small table a
# stage's start-up is most of its time, so the others import their modules when they run.
log = logging.getLogger(__name__)


def _competition(paths: ProjectPaths) -> Competition:
    return read_competition(paths.competition_file)


def _experiment(paths: ProjectPaths) -> tuple[TabularExperiment, dict, int]:
    from pipeline.common.runtime import set_threads
    from pipeline.tabular.members import FAMILIES
    from pipeline.tabular.params import SECTIONS, parse_tabular

    params = StageParams(paths.params)
    raw = params.sections(SECTIONS)
    experiment = params.parsed(raw, lambda sections: parse_tabular(sections, tuple(FAMILIES)))
    return experiment, raw, set_threads(params.runtime().threads)


def _tags(competition: Competition, stage: str) -> dict[str, str]:
    return {"competition": competition.slug, "task": competition.task, "metric": competition.metric, "stage": stage}


def fetch(paths: ProjectPaths) -> None:
    from pipeline.tabular.fetch import fetch_competition

    competition = _competition(paths)
    data = StageParams(paths.params).section("data", TabularDataParams)
    actions = fetch_competition(competition, data.source, paths.external_dir,
                                {"train": paths.raw_train, "test": paths.raw_test, "sample": paths.raw_sample},
                                int(data.max_file_mb * MB))
    for role, action in actions.items():
        log.info("%s: %s", role, action)


def validate(paths: ProjectPaths) -> None:
    from pipeline.tabular.schema import read_schema, validate_tables
    from pipeline.tabular.validation import ValidationFailed

    competition = _competition(paths)
    max_bytes = int(StageParams(paths.params).key("data", "max_file_mb", TabularDataParams) * MB)
    train, test = (read_csv_table(p, max_bytes=max_bytes, hint="run `dvc repro fetch` first")
                   for p in (paths.raw_train, paths.raw_test))
    ensure_writable(paths.interim_dir, paths.reports_dir)
    try:
        train, test, report = validate_tables(read_schema(paths.schema_file), train, test,
                                              id_column=competition.id_column, target=competition.target)
    except ValidationFailed as exc:  # the full report on disk, the digest as the stage's message
        write_json(exc.report.to_dict(), paths.validation_report)
        raise
    write_frame(train, paths.clean_train)
    write_frame(test, paths.clean_test)
    write_json(report.to_dict(), paths.validation_report)
    log.info("%s", report.summary())


def cv(paths: ProjectPaths) -> dict[str, float]:
    import numpy as np
    import pandas as pd

    from pipeline.common.io import sha1_of
    from pipeline.common.runtime import THREADS_TAG
    from pipeline.common.seed import seed_everything
    from pipeline.common.tracking import RunRecord, flatten, log_record
    from pipeline.submissions.source import CV_METRICS_TAG
    from pipeline.tabular.hooks import load_hooks
    from pipeline.tabular.library import MemberLibrary
    from pipeline.tabular.modeling import Problem, cross_validate
    from pipeline.tabular.plots import plot_cv

    competition = _competition(paths)
    experiment, raw, threads = _experiment(paths)
    seed_everything(experiment.base.seed)
    problem = Problem.of(competition, load_hooks(competition.module))
    train, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    ensure_writable(paths.processed_dir, paths.competition_metrics_dir, paths.competition_plots_dir)
    start = time.perf_counter()
    result = cross_validate(problem, experiment, train, test, MemberLibrary.for_project(paths.root))
    name = competition.metric
    seconds = time.perf_counter() - start
    # Top-level numbers are what DVC compares (`dvc metrics show`, `dvc exp show`); the details are
    # lists, which its tables leave out. The time goes to MLflow only: it differs on every run.
    metrics = {f"{name}_mean": result.mean, f"{name}_std": result.std, f"{name}_oof": result.oof_score,
               f"baseline_{name}_mean": float(np.mean(result.baseline_scores)),
               "threshold": result.threshold, "blend": experiment.model.blend,
               "folds": [float(s) for s in result.fold_scores],
               # each member's own score and its weight in the blend (what the train stage fits)
               "members": [{"member": f"member{i}-{m.kind}", name: float(np.mean(s)), "weight": float(w)}
                           for i, (m, s, w) in enumerate(zip(experiment.members, result.member_scores, result.weights,
                                                             strict=True))],
               "columns": [{"role": role, "count": len(cols)} for role, cols in result.roles.items()]}
    y = problem.fit_target(train)
    oof = pd.DataFrame({competition.id_column: train[competition.id_column], competition.target:
                        train[competition.target], **_oof_columns(problem, result.oof, "oof")})
    write_frame(oof, paths.oof_predictions)
    write_json(metrics, paths.competition_cv_metrics)
    plot_cv(problem, y, result, [m.kind for m in experiment.members], paths.competition_cv_png)
    better = "higher" if problem.metric.greater_is_better else "lower"
    log.info("CV %s %.5f ± %.5f (%s is better; the trivial baseline scores %.5f); dropped text columns: %s; "
             "%d of %d member(s) read from the OOF library", name, result.mean, result.std, better,
             metrics[f"baseline_{name}_mean"], ", ".join(result.roles["dropped"]) or "none", result.hits,
             len(experiment.members))
    flat = {k: v for k, v in metrics.items() if isinstance(v, float)}
    flat.update({f"member{i}_{name}": float(np.mean(s)) for i, s in enumerate(result.member_scores)}, seconds=seconds)
    tags = {**_tags(competition, "cv"), CV_METRICS_TAG: sha1_of(paths.competition_cv_metrics),
            THREADS_TAG: str(threads)}
    log_record(paths, competition.slug, RunRecord(name="cv", params=flatten(raw), metrics=flat, tags=tags,
                                                  artifacts=[paths.competition_cv_metrics, paths.competition_cv_png]))
    return flat


def _oof_columns(problem: Problem, link: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    competition = problem.competition
    if problem.task.kind == "regression":
        return {prefix: problem.submitted(link)}
    probabilities = problem.task.probabilities(link)
    if problem.task.kind == "binary":
        return {f"{prefix}_p_{competition.classes[1]}": probabilities}
    return {f"{prefix}_p_{c}": probabilities[:, i] for i, c in enumerate(competition.classes)}


def train(paths: ProjectPaths) -> None:
    import numpy as np
    import pandas as pd

    from pipeline.common.seed import seed_everything
    from pipeline.common.tracking import RunRecord, flatten, open_run
    from pipeline.submissions.source import CV_RUN_ID_TAG, MODEL_DIGEST_TAG, cv_run_of, folder_digest
    from pipeline.tabular.hooks import load_hooks
    from pipeline.tabular.modeling import Problem, fit_blend, save_blend
    from pipeline.tabular.serving import log_model

    competition = _competition(paths)
    experiment, raw, _threads = _experiment(paths)
    seed_everything(experiment.base.seed)
    problem = Problem.of(competition, load_hooks(competition.module))
    frame = pd.read_parquet(paths.clean_train)
    cv_metrics = json.loads(paths.competition_cv_metrics.read_text()) if paths.competition_cv_metrics.exists() \
        else {}
    ensure_writable(paths.blend_model_dir.parent, paths.competition_metrics_dir)
    start = time.perf_counter()
    # The members the CV's blend weighs, with its weights (equal, with no CV of these members yet).
    weights = _cv_weights(cv_metrics, [f"member{i}-{m.kind}" for i, m in enumerate(experiment.members)])
    kept = [i for i, w in enumerate(weights) if w > 0]
    blend = fit_blend(problem, [experiment.members[i] for i in kept], problem.features(frame),
                      problem.fit_target(frame),
                      on_member=lambda i, m, s: log.info("member %d (%s) fit on %d rows in %.1f s", i, m.kind,
                                                         len(frame), s))
    blend.threshold = float(cv_metrics.get("threshold", 0.5))
    blend.weights = np.array([weights[i] for i in kept])
    save_blend(blend, problem, paths.blend_model_dir)
    metrics = {"rows": len(frame), "members_fit": len(blend.members)}
    write_json(metrics, paths.competition_train_metrics)
    metrics.update(threshold=blend.threshold, seconds=time.perf_counter() - start)  # MLflow's, not DVC's
    cv_scores = {k: float(v) for k, v in cv_metrics.items() if isinstance(v, float)}
    log.info("saved the blend of %d member(s) to %s", len(blend.members), paths.blend_model_dir)
    # The CV run that scored this configuration, and the model folder's digest (the predict stage
    # finds this run by it): pipeline/submissions/source.py.
    links = {CV_RUN_ID_TAG: cv_run_of(paths, competition.slug, paths.competition_cv_metrics) or "",
             MODEL_DIGEST_TAG: folder_digest(paths.blend_model_dir)}
    record = RunRecord(name="train", params=flatten(raw), metrics={**metrics, **cv_scores},
                       tags={**_tags(competition, "train"), **links})
    with open_run(paths, competition.slug, record) as run:
        # The blend as a pyfunc model, registered under the competition's slug; its signature
        # and input example are test.csv as read.
        logged = run.log_model(lambda: log_model(paths.blend_model_dir, paths.competition_file, paths.schema_file,
                                                 pd.read_csv(paths.raw_test), competition))
        if logged is not None:
            log.info("registered %s version %s (%s)", competition.slug, logged.registered_model_version,
                     logged.model_uri)


def _cv_weights(cv_metrics: dict, names: list[str]) -> list[float]:
    """Each member's blend weight from cv.json, when it scored these members; else equal."""
    members = cv_metrics.get("members", [])
    if [m.get("member") for m in members] == names and all("weight" in m for m in members):
        return [float(m["weight"]) for m in members]
    return [1.0 / len(names)] * len(names)


def predict(paths: ProjectPaths) -> None:
    import pandas as pd

    from pipeline.submissions.source import link_submission
    from pipeline.tabular.hooks import load_hooks
    from pipeline.tabular.modeling import Problem, load_blend
    from pipeline.tabular.submission import submission_frame, write_submission

    competition = _competition(paths)
    problem = Problem.of(competition, load_hooks(competition.module))
    test = pd.read_parquet(paths.clean_test)
    blend, _spec = load_blend(paths.blend_model_dir)
    link = blend.link(problem.features(test))
    ids = test[competition.id_column].to_numpy()
    frame = submission_frame(competition, ids, link, blend.threshold)
    write_submission(frame, competition, ids, paths.submission)
    link_submission(paths, competition.slug, paths.blend_model_dir, paths.submission)
    log.info("wrote %s: %d rows, columns %s", paths.submission, len(frame), ", ".join(frame.columns))


def residuals(paths: ProjectPaths) -> None:
    import pandas as pd

    from pipeline.tabular.hooks import load_hooks
    from pipeline.tabular.modeling import Problem
    from pipeline.tabular.params import TabularResidualsParams
    from pipeline.tabular.residuals import group_columns, loss_by, plot_loss_by, residual_frame, summary, worst_rows

    competition = _competition(paths)
    params = StageParams(paths.params).section("residuals", TabularResidualsParams)
    problem = Problem.of(competition, load_hooks(competition.module))
    frame = residual_frame(problem, pd.read_csv(paths.oof_predictions), pd.read_parquet(paths.clean_train))
    worst = worst_rows(frame, params.worst)
    tables = {c: loss_by(frame, c) for c in group_columns(frame, problem, params.max_values)}
    ensure_writable(paths.competition_residuals_dir, paths.competition_metrics_dir)
    write_frame(worst, paths.competition_residuals_dir / "worst_rows.csv")
    for column, table in tables.items():
        write_frame(table, paths.competition_residuals_dir / f"by_{column}.csv")
    metrics = summary(frame, worst, tables)
    write_json(metrics, paths.competition_residuals_metrics)
    plot_loss_by(tables, paths.competition_residuals_png)
    log.info("mean out-of-fold loss %.5f; the worst %d rows carry %.0f%% of it", metrics["mean_loss"], len(worst),
             100 * metrics["worst_rows_share"])
    for column, table in list(tables.items())[:5]:
        log.info("by %s (largest share first):\n%s", column, table.head(5).to_string(index=False))


STAGES: dict[str, Callable[[ProjectPaths], object]] = {"fetch": fetch, "validate": validate, "cv": cv,
                                                        "train": train, "predict": predict,
                                                        "residuals": residuals}


def main(stage: str) -> None:
    if stage not in STAGES:
        raise SystemExit(f"usage: python -m pipeline.stages.tabular {{{','.join(STAGES)}}}")
    STAGES[stage](ProjectPaths.here())


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1] if len(sys.argv) > 1 else ""))
