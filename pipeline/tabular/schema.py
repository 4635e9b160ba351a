"""A pandera schema inferred from a competition's train.csv and test.csv, kept as YAML a person tightens.

`kpipe new` calls `infer_schema` on the two tables as `pd.read_csv` reads them and writes the
result with `write_schema`; the new project's `validate` stage reads it back and checks the raw
tables with `validate_tables`. The inference is deliberately loose, because it has seen only
these two files; each rule below says what the YAML means and what a reader may tighten.

- **dtype**: a column pandas reads as bool in every table is `bool`; one it reads as integers
  in every table (hence without a missing value) is `int64`; any other numeric column is
  `float64`, so an integer column with a gap in test alone is `float64`, which is what
  `pd.read_csv` makes of it; everything else (text, dates, mixed) is `str`. The schema coerces,
  and a float with a fraction in an `int64` column is reported rather than truncated.
- **nullable**: true when either table has a missing value in the column. The id and the
  target are never nullable: a row without them cannot be trained on or submitted.
- **unique**: the id, within each table.
- **range**: every numeric column but the id has `in_range` over the values of both tables,
  widened on each side by at least `MARGIN` of the observed range and rounded outward to a
  round number (whole numbers for `int64`), since test rows and later data fall a little
  outside train's extremes. Infinities are outside every range.
- **categories**: a text column with at most `MAX_LISTED_CATEGORIES` distinct values across
  both tables has `isin` of the values seen; above that (names, tickets, free text) only the
  dtype is checked.
- **strict**: the training table may hold no column beyond these; test.csv must hold every
  column but the target(s) (`test_schema`), and nothing else.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
import yaml

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path
from pipeline.tabular.validation import ValidationFailed, ValidationReport, failure, json_scalar

MARGIN = 0.1  # fraction of a column's observed range added on each side: later data strays a little beyond it
MAX_LISTED_CATEGORIES = 50  # more distinct values than this is an open set (names, tickets), not categories

_INT, _FLOAT, _BOOL, _STR = "int64", "float64", "bool", "str"


class SchemaFileError(PipelineError, ValueError):
    """The schema file is missing or is not a pandera schema; the message names the file."""


def _targets(target: str | list[str]) -> list[str]:
    return [target] if isinstance(target, str) else list(target)


def infer_schema(train: pd.DataFrame, test: pd.DataFrame, *, id_column: str, target: str | list[str],
                 margin: float = MARGIN) -> pa.DataFrameSchema:
    """The training table's schema (the target columns included), inferred from both tables.

    Test rows count as much as training rows: a dtype, a gap or a category seen only in test is
    one the project must accept, since test is what it will be asked to predict.
    """
    targets = set(_targets(target))
    columns = {}
    for name in train.columns:
        parts = [frame[name] for frame in (train, test) if name in frame.columns]
        columns[name] = _infer_column(name, parts, is_id=name == id_column, is_target=name in targets, margin=margin)
    return pa.DataFrameSchema(columns, strict=True, coerce=True, name="train", metadata={"margin": margin})


def _infer_column(name: str, parts: list[pd.Series], *, is_id: bool, is_target: bool, margin: float) -> pa.Column:
    dtype = _infer_dtype(parts)
    values = pd.concat(parts, ignore_index=True)
    checks: list[pa.Check] = []
    if not is_id and dtype in (_INT, _FLOAT):
        bounds = _widened_range(values, margin, integral=dtype == _INT)
        if bounds is not None:
            checks.append(pa.Check.in_range(*bounds))
    elif not is_id and dtype == _STR:
        seen = values.dropna().astype("str").unique()
        if len(seen) <= MAX_LISTED_CATEGORIES:
            checks.append(pa.Check.isin(sorted(str(value) for value in seen)))
    nullable = not (is_id or is_target) and bool(values.isna().any())
    return pa.Column(dtype, checks, nullable=nullable, unique=is_id, name=name)


def _infer_dtype(parts: list[pd.Series]) -> str:
    """The dtype every part coerces to without loss, following what `pd.read_csv` makes of a column."""
    if all(pd.api.types.is_bool_dtype(part) for part in parts):
        return _BOOL
    if any(pd.api.types.is_bool_dtype(part) or not pd.api.types.is_numeric_dtype(part) for part in parts):
        return _STR
    if all(pd.api.types.is_integer_dtype(part) and not part.isna().any() for part in parts):
        return _INT
    return _FLOAT


def _widened_range(values: pd.Series, margin: float, *, integral: bool) -> tuple[float, float] | None:
    """Observed range plus `margin` of it on each side, rounded outward so the YAML reads cleanly.

    The rounding step is the power of ten just below the padding, so it at most doubles it;
    a constant column is padded by `margin` of its value (or by 1 around zero).
    """
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    finite = numbers[numbers.abs() < math.inf]
    if finite.empty:
        return None
    low, high = float(finite.min()), float(finite.max())
    if margin <= 0:  # the observed range itself
        return (int(low), int(high)) if integral else (low, high)
    pad = margin * (high - low) if high > low else (margin * abs(low) or 1.0)
    exponent = math.floor(math.log10(pad))
    if integral:
        exponent = max(exponent, 0)
    step = 10.0**exponent
    digits = max(0, -exponent)
    low = round(math.floor((low - pad) / step) * step, digits)
    high = round(math.ceil((high + pad) / step) * step, digits)
    return (int(low), int(high)) if integral else (low, high)


def test_schema(schema: pa.DataFrameSchema, target: str | list[str]) -> pa.DataFrameSchema:
    """The same schema without the target column(s): what test.csv must satisfy."""
    present = [name for name in _targets(target) if name in schema.columns]
    return schema.remove_columns(present).set_name("test")


test_schema.__test__ = False  # type: ignore[attr-defined]  # a library function, not a pytest test


# pandera's YAML drops a schema's metadata, so the margin travels in the header and is read back from it.
_MARGIN_LINE = re.compile(r"^# margin: (?P<margin>\S+)$", re.MULTILINE)


def _header(schema: pa.DataFrameSchema) -> str:
    margin = (schema.metadata or {}).get("margin", "unrecorded")
    return (
        "# Inferred by `kpipe new` from the competition's train.csv and test.csv.\n"
        "# Numeric ranges are the observed ones widened by this fraction of their span on each side:\n"
        f"# margin: {margin}\n"
        f"# Text columns with at most {MAX_LISTED_CATEGORIES} distinct values list them (isin).\n"
        "# This is a first draft: tighten it (ranges, nullable, categories) with what you know of the data.\n"
    )


def _read_margin(text: str) -> float | None:
    match = _MARGIN_LINE.search(text)
    try:
        return float(match["margin"]) if match else None
    except ValueError:
        return None


def write_schema(schema: pa.DataFrameSchema, path: Path) -> None:
    """pandera's own YAML, under a comment header that says where it came from and that it is a draft.

    Written atomically: the `validate` stage never reads a half-written schema.
    """
    text = _header(schema) + schema.to_yaml()
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_schema(path: Path) -> pa.DataFrameSchema:
    """The schema in `path`; a missing, unreadable or malformed file is one `SchemaFileError` naming it.

    The file is read here rather than by `from_yaml`, which takes a path it cannot open for YAML
    text and fails far from the cause.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaFileError(f"cannot read the schema file {path}: {exc}") from exc
    try:
        loaded = yaml.safe_load(text)
        if not isinstance(loaded, dict) or not isinstance(loaded.get("columns"), dict):
            raise ValueError("expected a pandera DataFrameSchema with a `columns` mapping")
        schema = pa.DataFrameSchema.from_yaml(text)
    except (yaml.YAMLError, pa.errors.SchemaDefinitionError, pa.errors.SchemaInitError, ValueError, TypeError,
            KeyError, AttributeError) as exc:
        raise SchemaFileError(f"{path} is not a valid pandera schema: {exc}") from exc
    margin = _read_margin(text)
    if margin is not None:
        schema.metadata = {**(schema.metadata or {}), "margin": margin}
    return schema


def validate_tables(schema: pa.DataFrameSchema, train: pd.DataFrame, test: pd.DataFrame, *, id_column: str,
                    target: str | list[str]) -> tuple[pd.DataFrame, pd.DataFrame, ValidationReport]:
    """Both tables checked lazily (every failure of both collected), coerced frames returned.

    Train against `schema`, test against `test_schema(schema, target)`: ids unique within each
    table, no training feature column missing from test. Raises `ValidationFailed` carrying the
    report when anything fails. `id_column` is accepted for symmetry with `infer_schema`: the
    id's rules (unique, never missing) live in the schema itself, where a person can read them.
    """
    failures: list[dict[str, Any]] = []
    checked = []
    for table, frame, table_schema in (("train", train, schema), ("test", test, test_schema(schema, target))):
        if frame.empty:
            failures.append(failure(table, None, "has_rows", "no rows"))
        failures.extend(_fractional_failures(table_schema, table, frame))
        checked.append(_validate(table_schema, frame, table, failures))
    report = ValidationReport(failures, {"train": len(train), "test": len(test)})
    if not report.ok:
        raise ValidationFailed(report)
    clean_train, clean_test = checked
    assert clean_train is not None and clean_test is not None
    return clean_train, clean_test, report


def _fractional_failures(schema: pa.DataFrameSchema, table: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """`2.5` in an `int64` column: pandera's coercion would silently make it 2."""
    failures = []
    for name, column in schema.columns.items():
        if str(column.dtype) == _INT and name in frame.columns and pd.api.types.is_float_dtype(frame[name]):
            values = frame[name].dropna()
            failures.extend(failure(table, name, "integral", value) for value in values[values % 1 != 0])
    return failures


def _validate(schema: pa.DataFrameSchema, frame: pd.DataFrame, table: str,
              failures: list[dict[str, Any]]) -> pd.DataFrame | None:
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        for row in exc.failure_cases.itertuples(index=False):
            check = str(row.check)
            column = json_scalar(row.column)
            if check in ("column_in_dataframe", "column_in_schema"):  # pandera names the column in the case
                column = json_scalar(row.failure_case)
            failures.append({"table": table, "column": column, "check": check,
                             "failure_case": json_scalar(row.failure_case), "index": json_scalar(row.index)})
        return None
