"""The validation report every table check writes: each failure of a run, kept together so one
error names them all (House Prices' hand-written schemas and a competition's inferred one alike)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipeline.common.errors import PipelineError


@dataclass(frozen=True)
class ValidationReport:
    """Every failure of one validation run; `ok` when there are none."""

    failures: list[dict[str, Any]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "n_failures": len(self.failures), "rows": self.rows,
                "failures": self.failures}

    def summary(self, limit: int = 20) -> str:
        """A readable digest: one line per (table, column, check), with example values."""
        if self.ok:
            return f"validation passed: {self.rows}"
        frame = pd.DataFrame(self.failures)
        lines = [f"validation failed: {len(self.failures)} failure(s)"]
        for (table, column, check), group in frame.groupby(["table", "column", "check"], sort=False, dropna=False):
            examples = ", ".join(map(str, group["failure_case"].head(3)))
            where = f"{table}.{column}" if isinstance(column, str) else table
            lines.append(f"  {where}: {check} ({len(group)}x, e.g. {examples})")
            if len(lines) > limit:
                lines.append("  ... see the JSON report for the rest")
                break
        return "\n".join(lines)


class ValidationFailed(PipelineError, ValueError):
    """Raised with the full report attached (House Prices' `validate_raw`, a competition's
    `validate_tables`)."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


def failure(table: str, column: str | None, check: str, case: Any) -> dict[str, Any]:
    """One failure of a check no schema states (no rows, a fractional id), as the report holds it."""
    return {"table": table, "column": column, "check": check, "failure_case": json_scalar(case), "index": None}


def json_scalar(value: Any) -> Any:
    """JSON-friendly scalar (a failure case of any table's report, House Prices' or a competition's)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (int, float, str, bool)) else str(value)
