"""DVC stages: each module's `main()` is thin wiring over the shared core.

`run_stage` gives every stage the same behaviour at the edges: logging set up once, and a
known failure (bad params, a hash mismatch, invalid data) printed as one clear message with a
non-zero exit instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from pipeline.common.errors import PipelineError

EXPECTED_FAILURES = (PipelineError, FileNotFoundError)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main` as a program: exit 1 with a readable message on a known failure."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except EXPECTED_FAILURES as exc:
        logging.getLogger(main.__module__).error("%s", exc)
        sys.exit(1)
