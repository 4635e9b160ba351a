"""Where and on how many threads torch runs: the `runtime` section's choices.

Device: `auto` takes a GPU when one is present. Threads: small matrix products are latency
bound, and on a machine whose cores are busy elsewhere torch's default of one thread per core
makes them many times slower (threads wait on each other) while a single thread is
unaffected; so the default is the number of cores that are actually free, at least one.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)
# The MLflow tag of a run that records the torch thread count its stage used.
THREADS_TAG = "runtime.threads_used"


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


def current_threads() -> int:
    """The thread count `set_threads` chose for this process: what other libraries (LightGBM)
    get too, so one `runtime.threads` governs every library of a stage."""
    return torch.get_num_threads()


def resolve_device(choice: str) -> torch.device:
    """`auto` takes a GPU when one is present; `cuda` without one is an error, not a fallback."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device is 'cuda' but no CUDA device is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)
