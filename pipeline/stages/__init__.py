"""DVC stages: each module's `main()` is thin wiring over the shared core.

`run_stage` gives every stage the same behaviour at the edges: logging set up once (secrets
masked, `pipeline.common.redact`), and a known failure (bad params, a hash mismatch, invalid
data) printed as one clear message with a non-zero exit instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pipeline.common.console import configure_output
from pipeline.common.errors import PipelineError
from pipeline.common.redact import redact


def describe(exc: BaseException) -> str:
    """The message of a known failure; for an OS error, what failed on which file."""
    if isinstance(exc, OSError) and not isinstance(exc, PipelineError) and exc.filename:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    return str(exc)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main` as a program: exit 1 with a readable message on a known failure.

    Known failures are the `PipelineError`s (bad params or data, no credentials, divergence)
    and OS errors (a missing input, a full disk, a read-only folder): the user fixes the cause,
    a traceback would not help. Anything else is a bug and keeps its traceback.
    """
    configure_output()
    try:
        main()
    except (PipelineError, OSError) as exc:
        # Straight to stderr, not through logging: the one message must show whatever the
        # logging set-up (DVC, typer, a test runner), and it is the stage's last word.
        print(f"error: {redact(describe(exc))}", file=sys.stderr, flush=True)
        sys.exit(1)
