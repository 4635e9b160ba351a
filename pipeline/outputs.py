"""Writing stage outputs: JSON metrics and wide CSV curves (what `dvc metrics`/`plots` read)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def write_json(data: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def write_columns(index_name: str, columns: Mapping[str, Sequence[float]], path: Path) -> None:
    """One row per step (1-based), one column per named series, for `dvc plots`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    length = max(len(v) for v in columns.values())
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([index_name, *columns])
        for i in range(length):
            writer.writerow([i + 1, *(v[i] if i < len(v) else "" for v in columns.values())])
