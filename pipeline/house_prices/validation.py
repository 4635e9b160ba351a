"""Validate the raw competition tables and explain every failure at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pandera.pandas as pa

from pipeline.common.errors import PipelineError
from pipeline.house_prices.schemas import ID, RawTest, RawTrain


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
            lines.append(f"  {table}.{column}: {check} ({len(group)}x, e.g. {examples})")
            if len(lines) > limit:
                lines.append("  ... see the JSON report for the rest")
                break
        return "\n".join(lines)


class ValidationFailed(PipelineError, ValueError):
    """Raised by `validate_raw` with the full report attached."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


def validate_raw(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, ValidationReport]:
    """Check both tables against their schemas and against each other.

    Returns the coerced frames and the report; raises `ValidationFailed` (carrying the report)
    when anything fails, after collecting *every* failure of both tables.
    """
    failures: list[dict[str, Any]] = []
    clean_train = _validate(RawTrain, train, "train", failures)
    clean_test = _validate(RawTest, test, "test", failures)
    if ID in train.columns and ID in test.columns:
        shared = sorted(set(train[ID].dropna()) & set(test[ID].dropna()))
        failures.extend({"table": "test", "column": ID, "check": "ids_disjoint_from_train",
                         "failure_case": _plain(i), "index": None} for i in shared)
    report = ValidationReport(failures, {"train": len(train), "test": len(test)})
    if not report.ok:
        raise ValidationFailed(report)
    assert clean_train is not None and clean_test is not None
    return clean_train, clean_test, report


def validate_test(test: pd.DataFrame) -> pd.DataFrame:
    """Rows to predict on their own (no training table to compare ids with), checked and typed
    by the same `RawTest` schema; raises `ValidationFailed` with every failure."""
    failures: list[dict[str, Any]] = []
    clean = _validate(RawTest, test, "test", failures)
    if failures:
        raise ValidationFailed(ValidationReport(failures, {"test": len(test)}))
    assert clean is not None
    return clean


def _validate(model: type[pa.DataFrameModel], frame: pd.DataFrame, table: str,
              failures: list[dict[str, Any]]) -> pd.DataFrame | None:
    try:
        return model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        for row in cases.itertuples(index=False):
            failures.append({"table": table, "column": _plain(row.column), "check": str(row.check),
                             "failure_case": _plain(row.failure_case), "index": _plain(row.index)})
        return None


def _plain(value: Any) -> Any:
    """JSON-friendly scalar."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (int, float, str, bool)) else str(value)
