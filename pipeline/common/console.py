"""Output for people and for logs.

On a terminal, progress bars (tqdm) redraw one line in place. Redirected to a file (`make >
make.log`, CI, `dvc exp run --queue`), every redraw would be written out, and hundreds of them
bury what happened; there the stages say it in plain log lines instead, one per stage step or
per member. So every bar of the project comes from `progress_bar`, which is off unless stderr
is a terminal, and `configure_output` turns MLflow's own artifact bars off in the same case.
Logging is set up here too, with secrets masked (`pipeline.common.redact`).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from tqdm.auto import tqdm

from pipeline.common.redact import RedactingFilter


def on_terminal() -> bool:
    """True when stderr, where bars and logs go, is a terminal a person watches."""
    return sys.stderr.isatty()


def progress_bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """`tqdm(iterable, **kwargs)` on a terminal (where TQDM_DISABLE still turns it off); a silent
    pass-through in a log."""
    if not on_terminal():
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)


def configure_output(level: int = logging.INFO) -> None:
    """The root logger's format (`LEVEL name: message`) and the redacting filter on each of its
    handlers (a set-up made earlier, by DVC or a test runner, keeps its handlers and gets the
    filter); off a terminal, MLflow's artifact progress bars off too."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if not on_terminal():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
