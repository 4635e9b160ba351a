"""`kpipe`: one subcommand per stage, plus the tools around them (runs, submit, tune).

The stage subcommands run the same `main()` that `dvc repro` runs; use `dvc repro` to get
caching and dependency tracking, `kpipe <stage>` to run one step by hand. Every command goes
through `run_stage`, so a known failure is one message and exit code 1, never a traceback.

Every command but `kpipe new` (and any `--help`) first makes sure it runs in a project, in one
place (`_main`): outside one it says so and exits 2, having touched nothing; inside, a bad value
anywhere in params.yaml is the stages' own one line, whatever the command would have read.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
import typer
from typer.core import TyperGroup

from pipeline.common.console import configure_output
from pipeline.common.errors import PipelineError
from pipeline.common.paths import ProjectPaths
from pipeline.projects import NotAProject, Project, project_at
from pipeline.stages import run_stage

# The commands that run outside a project: `new` makes one.
ANYWHERE = frozenset({"new"})
# Where `_Commands` leaves the chosen command's own arguments for `_main`.
_COMMAND_ARGS = "kpipe.command_args"


class _Commands(TyperGroup):
    """kpipe's group. Click runs the group's callback before it parses the command's own arguments,
    so it keeps them here: `_main` lets `kpipe <command> --help` through anywhere."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[_COMMAND_ARGS] = tuple(rest)
        return name, command, rest


app = typer.Typer(help="House Prices and Fashion-MNIST pipelines (D2L chapters 3-4).", cls=_Commands,
                  no_args_is_help=True, add_completion=False)

STAGES = {
    "fetch": "Extract (or download) the competition CSVs, verified by SHA-1.",
    "validate": "Check the raw tables with pandera; write typed copies and a JSON report.",
    "features": "Fit the feature transformer on all training rows; write the matrices (inspection).",
    "cv": "K-fold cross-validation of the configured model; metrics, curves, MLflow runs.",
    "train": "Final fit on every training row; save the model under models/.",
    "predict": "Write submissions/submission.csv from the saved model (--model-uri, --champion: an MLflow model).",
    "residuals": "Where the out-of-fold predictions are wrong: worst houses, error by group, a picture.",
    "fetch-fashion": "Fetch and verify the four Fashion-MNIST files; write data/fashion/fashion_mnist.npz.",
    "study-linreg": "Linear regression on synthetic data: recovered w and b, scratch vs nn.Linear.",
    "study-weight-decay": "Weight decay sweep on the book's overfit high-dimensional regression.",
    "study-init": "Vanishing/exploding gradients by activation and initialization.",
}


@app.callback()
def _main(ctx: typer.Context, verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    configure_output(logging.DEBUG if verbose else logging.INFO)
    asks_help = any(arg in ctx.help_option_names for arg in ctx.meta.get(_COMMAND_ARGS, ()))
    if ctx.invoked_subcommand not in ANYWHERE and not asks_help:
        _require_project()


def _require_project() -> None:
    """Outside a project, one line and exit 2 before anything runs, so no command answers from an
    empty folder or leaves a store in it; inside, params.yaml checked whole (exit 1 on a bad value)."""
    try:
        project = _project()
    except NotAProject as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    run_stage(project.check_params)


def _project() -> Project:
    """The project of the current folder (pipeline.projects): House Prices, or a `kpipe new` one."""
    return project_at(ProjectPaths.here())


def _run_stage_named(name: str) -> None:
    def command() -> None:
        project = _project()
        if not project.has_stage(name):
            raise PipelineError(f"this competition project has no stage {name!r} (it has those of its dvc.yaml)")
        project.run_stage(name)

    run_stage(command)


def _stage_command(name: str, help_text: str) -> None:
    def command() -> None:
        _run_stage_named(name)

    app.command(name=name, help=help_text)(command)


def _predict(
    model_uri: str = typer.Option(None, help="An MLflow model instead of the saved one, e.g. "
                                             "models:/house-prices/3 or models:/<competition>/latest."),
    champion: bool = typer.Option(False, "--champion", help="The version the team trusts: "
                                                            "models:/<model>-trusted@champion (`kpipe promote`)."),
    output: Path = typer.Option(None, "--output", "-o", help="With --model-uri or --champion; default: "
                                                             "submissions/submission-<name>-<version>.csv."),
) -> None:
    """The `predict` stage; with --model-uri or --champion, a logged or registered model's submission instead."""
    if model_uri is None and not champion:
        _run_stage_named("predict")
        return

    def command() -> None:
        from pipeline.common.registry import champion_uri, trust_note

        project = _project()
        if champion and model_uri is not None:
            raise PipelineError("give --model-uri or --champion, not both")
        uri = champion_uri(project.registered_model) if champion else model_uri
        if (note := trust_note(uri, project.registered_model, project.paths)) is not None:
            typer.echo(note, err=True)
        typer.echo(f"wrote {project.registered_submission(uri, output)} from {uri}")

    run_stage(command)


for _name, _help in STAGES.items():
    if _name == "predict":  # the stage, or the same with a registered model
        app.command(name=_name, help=_help)(_predict)
    else:
        _stage_command(_name, _help)


@app.command()
def runs(limit: int = typer.Option(20, help="How many runs to show.")) -> None:
    """Past CV runs from MLflow, best CV score first (the metric's own direction), with the params that differ."""
    def command() -> None:
        from mlflow.exceptions import MlflowException

        from pipeline.common.tracking import command_calls, explain

        try:
            with command_calls():
                table = _project().runs(limit)
        except MlflowException as exc:
            raise PipelineError(f"cannot read the runs: {explain(exc)}") from exc
        typer.echo(table.to_string(index=False, na_rep="-") if not table.empty
                   else "no CV runs yet: run `dvc repro` (or `kpipe cv`) first")

    run_stage(command)


@app.command()
def submit(
    file: Path = typer.Option(None, "--file", "-f", help="Default: submissions/submission.csv."),
    message: str = typer.Option(None, "--message", "-m", help="Default: git commit and CV score."),
    wait: float = typer.Option(300, help="Seconds to wait for Kaggle's score (0: do not wait)."),
    poll_interval: float = typer.Option(5, help="Seconds between two looks at the submission's status."),
    force: bool = typer.Option(False, "--force", help="Submit bytes the log says were already submitted."),
) -> None:
    """Validate the file, show the allowance left today, submit it with the Kaggle API, log it in
    submissions/log.csv, wait for its score and record it on the MLflow runs and model version."""
    from pipeline.common.kaggle_api import KaggleSubmission, KaggleUnavailable, submit_command
    from pipeline.projects import default_message
    from pipeline.submissions.workflow import SubmitOptions
    from pipeline.submissions.workflow import submit as submit_file

    paths = ProjectPaths.here()
    path = file or paths.submission

    terminal = sys.stderr.isatty()
    seen: list[str] = []

    def progress(submission: KaggleSubmission, waited: float) -> None:
        """One line rewritten in place on a terminal; in a log, one line per status."""
        line = f"waiting for Kaggle to score submission {submission.ref}: {submission.status} after {waited:.0f} s"
        if terminal:
            typer.echo(f"\r{line} ", nl=False, err=True)
        elif submission.status not in seen:
            seen.append(submission.status)
            typer.echo(line, err=True)

    def command() -> None:
        project = _project()
        text = message or default_message(project)
        options = SubmitOptions(path=path, message=text, wait_s=wait, poll_s=poll_interval, force=force)
        try:
            row = submit_file(project, options, typer.echo, on_poll=progress)
        except KaggleUnavailable as exc:
            typer.echo(f"{exc}\nThe file is valid; to submit it by hand:\n  "
                       f"{submit_command(path, text, project.competition.slug)}")
            raise typer.Exit(2) from exc
        if wait > 0 and terminal:
            typer.echo("", err=True)  # ends the progress line
        if not row.scored:
            typer.echo(f"submission {row.ref} is still {row.status} on Kaggle; `kpipe submissions` records its "
                       "score once it has one")
        if row.status == "ERROR":
            raise typer.Exit(1)

    run_stage(command)


@app.command()
def submissions(limit: int = typer.Option(20, help="How many to show, newest first.")) -> None:
    """Your past submissions on Kaggle, with their scores; completes submissions/log.csv (pending
    rows, later scores, submissions made outside kpipe) and records new scores in MLflow."""
    def command() -> None:
        from pipeline.submissions.workflow import submissions_table, sync

        table = submissions_table(sync(_project(), limit, typer.echo))
        typer.echo(table.to_string(index=False) if not table.empty else "no submissions yet")

    run_stage(command)


@app.command()
def leaderboard(
    plot: Path = typer.Option(None, help="Where to draw CV against the public score (default: "
                                         "plots/leaderboard.png)."),
) -> None:
    """CV against the public leaderboard for every logged submission: the table, the fit line, the
    rank correlation and a picture (from submissions/log.csv; `kpipe submissions` brings it up to date)."""
    def command() -> None:
        from pipeline.submissions.leaderboard import leaderboard_report, plot_leaderboard
        from pipeline.submissions.log import read_log

        project = _project()
        log = read_log(project.paths.submission_log)
        if not log.rows:
            typer.echo(f"no submissions logged in {project.paths.submission_log} yet: `kpipe submit` adds them")
            return
        competition = project.competition
        report = leaderboard_report(log, competition.metric)
        picture = plot or project.paths.leaderboard_png
        plot_leaderboard(report, f"{competition.slug}\nCV against the public leaderboard", picture)
        typer.echo(report.table.to_string(index=False, na_rep="-"))
        typer.echo(report.summary())
        typer.echo(f"wrote {picture}")

    run_stage(command)


@app.command()
def promote(version: str = typer.Argument(..., help="The version of the project's registered model to trust.")) -> None:
    """Make a registered version the team's champion: copy it into <model>-trusted (only the tracking
    server's admin may) and point the alias `champion` at the copy, which `kpipe predict --champion` loads."""
    def command() -> None:
        from pipeline.common.registry import promote as promote_version

        project = _project()
        typer.echo(promote_version(project.paths, project.registered_model, version).describe(project.registered_model))

    run_stage(command)


@app.command("team-init")
def team_init(editor: list[str] = typer.Option(..., "--editor", help="A user who may log runs and register "
                                                                        "versions; repeat the option.")) -> None:
    """As the tracking server's admin: create the project's experiment, registered model and trusted model,
    give each editor EDIT on the first two and only READ on the trusted one (docs/team.md)."""
    def command() -> None:
        from pipeline.team.access import init_team

        project = _project()
        typer.echo(init_team(project.paths, project.experiment, project.registered_model, editor).report())

    run_stage(command)


@app.command()
def new(
    name: Path = typer.Argument(..., help="The project folder to create (it must not exist)."),
    source: Path = typer.Option(None, "--from", help="Kaggle's zip, or a folder holding its CSVs."),
    target: str = typer.Option(None, help="The target column (default: the column train has and test lacks)."),
    id_column: str = typer.Option(None, "--id", help="The id column (default: the one test shares with the "
                                                     "sample submission)."),
    task: str = typer.Option(None, help="regression, binary or multiclass (default: from the target's values)."),
    metric: str = typer.Option(None, help="Kaggle's metric name, e.g. rmse, rmsle, mae, auc, logloss, accuracy "
                                          "(default: from the task and the sample submission)."),
    competition: str = typer.Option(None, help="Kaggle's slug (default: NAME); without --from, the files are "
                                               "downloaded with the Kaggle client."),
) -> None:
    """A ready project for any tabular competition: competition.yaml, an inferred pandera schema,
    params.yaml and dvc.yaml (fetch -> validate -> cv -> train -> predict), git and DVC initialised."""
    def command() -> None:
        from pipeline.tabular.scaffold import NewOptions, new_project

        made = new_project(NewOptions(name=name, source=source, target=target, id_column=id_column, task=task,
                                      metric=metric, competition=competition))
        layout = made.submission.layout.replace("_", " ")
        typer.echo(f"created {name}: {made.task} on {made.target} (id {made.id_column}), metric {made.metric}, "
                   f"submission of {layout}\nnext: cd {name} && git add . && git commit -m 'kpipe new' && dvc repro")

    run_stage(command)


@app.command("train-fashion")
def train_fashion(model: str = typer.Argument(..., help="One of fashion_models.")) -> None:
    """Train one Fashion-MNIST classifier (softmax_scratch, softmax, mlp_scratch, mlp, ...)."""
    def command() -> None:
        from pipeline.stages import train_fashion as stage

        metrics = stage.main(model)
        typer.echo(" ".join(f"{k}={v:.4f}" for k, v in metrics.items()))

    run_stage(command)


@app.command()
def tune(
    n_trials: int = typer.Option(None, help="Trials for this process to run (default: tune.n_trials)."),
    timeout: float = typer.Option(None, help="Seconds after which no new trial starts "
                                             "(default: tune.timeout_s; 0 = none)."),
    storage: str = typer.Option(None, help="Optuna storage: a journal file path, sqlite:///..., postgresql://... "
                                           "(default: tune.storage; \"\" = optuna.journal)."),
    study_name: str = typer.Option(None, help="Study to create or join (default: tune.study_name)."),
    n_jobs: int = typer.Option(1, help="Trials run at once in threads of this process."),
    sampler_seed: int = typer.Option(None, help="TPE seed (default: tune.sampler_seed); "
                                                "give each extra worker its own."),
    output: Path = typer.Option(None, help="Params file with the best values (default: params.tuned.yaml)."),
    apply: bool = typer.Option(False, "--apply", help="Write the best values into params.yaml itself (comments "
                                                      "kept), only if they beat it by more than the fold noise."),
    force: bool = typer.Option(False, "--force", help="With --apply: write the best trial even if it does not "
                                                      "beat params.yaml."),
    status: bool = typer.Option(False, "--status", help="Run nothing: print the study's trials by state, the best "
                                                        "values and the workers that contributed."),
) -> None:
    """Optuna study of the CV log-RMSE over `tune.space`; writes the best params for `dvc repro`."""
    import os

    # Per-trial progress bars would bury Optuna's log; tqdm reads this when first imported.
    os.environ.setdefault("TQDM_DISABLE", "1")

    def command() -> None:
        project = _project()
        if storage:  # a host that does not resolve fails before the pipeline's code is even imported
            from pipeline.tuning.storage import check_storage_host

            check_storage_host(storage)
        from pipeline.tuning.study import TuneOptions

        options = TuneOptions(n_trials=n_trials, timeout_s=timeout, storage=storage, study_name=study_name,
                              sampler_seed=sampler_seed, n_jobs=n_jobs, output=output, apply=apply,
                              force=force)
        typer.echo(project.tune(options, status))

    run_stage(command)


@app.command()
def blend(
    study: str = typer.Option(None, help="Choose among the members of this study's trials (default: every "
                                         "entry of the OOF library on the same folds)."),
    storage: str = typer.Option(None, help="With --study: its Optuna storage (default: tune.storage)."),
    key: list[str] = typer.Option([], "--key", help="Choose among these library entries (key prefixes, as "
                                                    "`kpipe oof` shows them); repeat the option."),
    repeats: int = typer.Option(None, help="k-fold repeats of the fold plan (default: tune.cv_repeats)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report only; never write params.yaml."),
) -> None:
    """Choose a blend from the OOF library (mean or greedy selection, scored nested) and write it into
    params.yaml as model.members only when it beats params.yaml by more than the fold noise."""
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")

    def command() -> None:
        typer.echo(_project().blend(study, storage, tuple(key), repeats, dry_run))

    run_stage(command)


@app.command()
def oof(
    limit: int = typer.Option(30, help="How many entries to show, best CV first."),
    prune_keep: int = typer.Option(None, "--prune-keep", help="Remove all but this many best entries of each "
                                                              "fold plan and data."),
    prune_days: float = typer.Option(None, "--prune-days", help="Remove entries older than this many days."),
) -> None:
    """The OOF library (.kpipe/oof/, or $KPIPE_OOF_LIBRARY): every member's cross-validation kept
    across experiments, best first; --prune-keep / --prune-days remove old or weak entries."""
    def command() -> None:
        from pipeline.tabular.oof_library import OOFLibrary
        from pipeline.tuning.blend_library import library_table

        library = OOFLibrary.for_project(ProjectPaths.here().root)
        removed = library.prune(keep=prune_keep, older_than_days=prune_days)
        if prune_keep is not None or prune_days is not None:
            typer.echo(f"removed {len(removed)} entries")
        typer.echo(library_table(library, limit))

    run_stage(command)


if __name__ == "__main__":
    app()
