"""matplotlib, headless: the Agg backend (no display needed under DVC, CI or ssh) and one
way to write a figure to PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from pipeline.common.io import atomic_path

matplotlib.use("Agg")  # the backend must be chosen before pyplot is imported
import matplotlib.pyplot as plt

__all__ = ["plt", "save_figure"]


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Lay out, write `path` as PNG (atomically, creating its folder), and free the figure.

    PNG metadata carries no date or software version, so the same figure gives the same bytes.
    """
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
