"""Validate House Prices' raw tables against its hand-written schemas and explain every failure
at once (in the core's report: `pipeline.tabular.validation`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa

from pipeline.house_prices.schemas import FEATURE_COLUMNS, ID, RawTest, RawTrain, fractional_ids
from pipeline.tabular.validation import ValidationFailed, ValidationReport, failure, json_scalar


def validate_raw(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, ValidationReport]:
    """Check both tables against their schemas and against each other.

    Returns the coerced frames and the report; raises `ValidationFailed` (carrying the report)
    when anything fails, after collecting *every* failure of both tables.
    """
    failures: list[dict[str, Any]] = []
    for table, frame in (("train", train), ("test", test)):
        if frame.empty:
            failures.append(failure(table, None, "has_rows", "no rows"))
        failures.extend(_fractional_id_failures(table, frame))
    clean_train = _validate(RawTrain, train, "train", failures)
    clean_test = _validate(RawTest, test, "test", failures)
    if ID in train.columns and ID in test.columns:
        shared = sorted(set(train[ID].dropna()) & set(test[ID].dropna()))
        failures.extend(failure("test", ID, "ids_disjoint_from_train", i) for i in shared)
    failures.extend(_missing_in_test(train, test))
    report = ValidationReport(failures, {"train": len(train), "test": len(test)})
    if not report.ok:
        raise ValidationFailed(report)
    assert clean_train is not None and clean_test is not None
    return clean_train, clean_test, report


def _fractional_id_failures(table: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """`1461.5` as an id: the schema's coercion to int would silently make it 1461."""
    if ID not in frame.columns:
        return []
    return [failure(table, ID, "integral", i) for i in fractional_ids(frame[ID])]


# A test column may be empty by chance only when few of its rows would have a value: with
# this many expected, an all-missing column has odds below e^-10 of being real data.
MIN_EXPECTED_VALUES = 10


def _missing_in_test(train: pd.DataFrame, test: pd.DataFrame) -> list[dict[str, Any]]:
    """Feature columns that train fills but test leaves entirely empty, against the odds.

    An error rather than a warning: the fitted imputer would fill every test row with the
    training mean, silently moving the prices of every house that has the feature. A test
    file like that is a broken export, and the fix belongs in the file. A column rare in
    train (a pool, say) may well be empty in a small test file and is left alone.
    """
    if test.empty or train.empty:
        return []
    failures = []
    for column in FEATURE_COLUMNS:
        if column in test.columns and column in train.columns and test[column].isna().all():
            expected = len(test) * float(train[column].notna().mean())
            if expected >= MIN_EXPECTED_VALUES:
                failures.append(failure("test", column, "not_entirely_missing",
                                         f"all {len(test)} test values missing where train's rate predicts "
                                         f"{expected:.0f}"))
    return failures


def validate_test(test: pd.DataFrame) -> pd.DataFrame:
    """Rows to predict on their own (no training table to compare ids with), checked and typed
    by the same `RawTest` schema; raises `ValidationFailed` with every failure."""
    failures = _fractional_id_failures("test", test)
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
            failures.append({"table": table, "column": json_scalar(row.column), "check": str(row.check),
                             "failure_case": json_scalar(row.failure_case), "index": json_scalar(row.index)})
        return None
