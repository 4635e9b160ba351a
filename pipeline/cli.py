"""`kpipe`: one subcommand per stage, plus the tools around them (runs, submit)."""

from __future__ import annotations

import logging

import typer

app = typer.Typer(help="House Prices and Fashion-MNIST pipelines (D2L chapters 3-4).",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command("fetch-fashion")
def fetch_fashion() -> None:
    """Fetch and verify the four Fashion-MNIST files; write data/fashion/fashion_mnist.npz."""
    from pipeline.stages import fetch_fashion as stage

    stage.main()


@app.command("train-fashion")
def train_fashion(model: str = typer.Argument(..., help="One of fashion_train.models.")) -> None:
    """Train one Fashion-MNIST classifier (softmax_scratch, softmax, mlp_scratch, mlp, ...)."""
    from pipeline.stages import train_fashion as stage

    metrics = stage.main(model)
    typer.echo(" ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


@app.command("study-linreg")
def study_linreg() -> None:
    """Linear regression on synthetic data: recovered w and b, scratch vs nn.Linear."""
    from pipeline.stages import study_linreg as stage

    stage.main()


@app.command("study-weight-decay")
def study_weight_decay() -> None:
    """Weight decay sweep on the book's overfit high-dimensional regression."""
    from pipeline.stages import study_weight_decay as stage

    stage.main()


@app.command("study-init")
def study_init() -> None:
    """Vanishing/exploding gradients by activation and initialization."""
    from pipeline.stages import study_init as stage

    stage.main()
