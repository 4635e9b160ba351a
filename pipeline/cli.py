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
