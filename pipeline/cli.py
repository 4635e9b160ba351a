"""`kpipe`: one subcommand per stage, plus the tools around them (runs, submit, tune).

The stage subcommands run the same `main()` that `dvc repro` runs; use `dvc repro` to get
caching and dependency tracking, `kpipe <stage>` to run one step by hand. Every command goes
through `run_stage`, so a known failure is one message and exit code 1, never a traceback.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import typer

from pipeline.common.paths import ProjectPaths
from pipeline.stages import run_stage

app = typer.Typer(help="House Prices and Fashion-MNIST pipelines (D2L chapters 3-4).",
                  no_args_is_help=True, add_completion=False)

STAGES = {
    "fetch": "Extract (or download) the competition CSVs, verified by SHA-1.",
    "validate": "Check the raw tables with pandera; write typed copies and a JSON report.",
    "features": "Fit the feature transformer on all training rows; write the matrices (inspection).",
    "cv": "K-fold cross-validation of the configured model; metrics, curves, MLflow runs.",
    "train": "Final fit on every training row; save the model under models/.",
    "predict": "Write submissions/submission.csv from the saved model.",
    "fetch-fashion": "Fetch and verify the four Fashion-MNIST files; write data/fashion/fashion_mnist.npz.",
    "study-linreg": "Linear regression on synthetic data: recovered w and b, scratch vs nn.Linear.",
    "study-weight-decay": "Weight decay sweep on the book's overfit high-dimensional regression.",
    "study-init": "Vanishing/exploding gradients by activation and initialization.",
}


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")


def _stage_command(name: str, help_text: str) -> None:
    module = f"pipeline.stages.{name.replace('-', '_')}"

    def command() -> None:
        run_stage(lambda: importlib.import_module(module).main())

    app.command(name=name, help=help_text)(command)


for _name, _help in STAGES.items():
    _stage_command(_name, _help)


@app.command()
def runs(limit: int = typer.Option(20, help="How many runs to show.")) -> None:
    """Past CV runs from MLflow, best CV log-RMSE first, with the params that differ."""
    def command() -> None:
        from pipeline.house_prices.runs import cv_runs, runs_table

        table = runs_table(cv_runs(ProjectPaths.here()), limit)
        typer.echo(table.to_string(index=False) if not table.empty
                   else "no CV runs yet: run `dvc repro` (or `kpipe cv`) first")

    run_stage(command)


@app.command()
def submit(
    file: Path = typer.Option(None, "--file", "-f", help="Default: submissions/submission.csv."),
    message: str = typer.Option(None, "--message", "-m", help="Default: git commit and CV score."),
) -> None:
    """Validate the submission against the test ids, then submit it with the Kaggle API."""
    from pipeline.common.errors import PipelineError
    from pipeline.house_prices.kaggle_submit import submit as send

    paths = ProjectPaths.here()
    try:
        sent, text = send(paths, file or paths.submission, message)
    except PipelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(text)
    raise typer.Exit(0 if sent else 2)


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
    apply: bool = typer.Option(False, "--apply", help="Write the best values into params.yaml itself (comments kept)."),
    status: bool = typer.Option(False, "--status", help="Run nothing: print the study's trials by state, the best "
                                                        "values and the workers that contributed."),
) -> None:
    """Optuna study of the CV log-RMSE over `tune.space`; writes the best params for `dvc repro`."""
    import os

    # Per-trial progress bars would bury Optuna's log; tqdm reads this when first imported.
    os.environ.setdefault("TQDM_DISABLE", "1")
    from pipeline.common.errors import PipelineError
    from pipeline.tuning.study import TuneOptions, run_tuning, summary

    if status:
        _print_study_status(storage, study_name)
        return

    options = TuneOptions(n_trials=n_trials, timeout_s=timeout, storage=storage, study_name=study_name,
                          sampler_seed=sampler_seed, n_jobs=n_jobs, output=output, apply=apply)
    try:
        outcome = run_tuning(ProjectPaths.here(), options)
    except PipelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(summary(outcome))


def _print_study_status(storage: str | None, study_name: str | None) -> None:
    """`kpipe tune --status`: the shared study as it stands, from any machine with the project."""
    from pipeline.common.errors import PipelineError
    from pipeline.tuning.status import study_status

    try:
        text = study_status(ProjectPaths.here(), storage, study_name)
    except PipelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(text)


if __name__ == "__main__":
    app()
