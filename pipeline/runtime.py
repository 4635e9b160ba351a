"""How many CPU threads torch should use.

Small matrix products are latency bound: measured on a 2-core machine with one core busy
elsewhere, torch's default of one thread per core slowed them ~60x (threads wait on each
other), while a single thread was unaffected. So the default is the number of cores that
are actually free, at least one.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def free_cores() -> int:
    """Cores this process may use minus the current 1-minute load, at least 1."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(usable, int(usable - busy + 0.5)))


def resolve_threads(threads: int) -> int:
    """`threads` as requested, or (0) the number of free cores."""
    return threads if threads > 0 else free_cores()


def set_threads(threads: int) -> int:
    """Use `threads` torch threads (0 = `free_cores()`); return the number set."""
    n = resolve_threads(threads)
    torch.set_num_threads(n)
    log.debug("torch uses %d thread(s)", n)
    return n
