"""Property: whatever happens to the competition CSVs, validation either fails cleanly or passes
frames on which the rest of the pipeline runs to a valid submission.

Hypothesis corrupts slices of the real files (cell values, dropped columns, truncation, another
encoding, stray delimiters); the pipeline after validation is the real one at minimum size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import model_params, plain_features, train_params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.common.errors import PipelineError
from pipeline.common.readers import read_csv_table
from pipeline.house_prices.cv import cross_validate, split_folds
from pipeline.house_prices.final import fit_final, predict_blend
from pipeline.house_prices.submission import check_submission
from pipeline.house_prices.validation import validate_raw

CAP = 50 << 20
TRAIN_ROWS, TEST_ROWS = 60, 30


@pytest.fixture(scope="module")
def texts(house_prices_dir: Path) -> dict[str, str]:
    """Header plus the first rows of each real file, as text."""
    out = {}
    for table, rows in (("train", TRAIN_ROWS), ("test", TEST_ROWS)):
        lines = (house_prices_dir / f"kaggle_house_pred_{table}.csv").read_text().splitlines()
        out[table] = "\n".join(lines[: rows + 1]) + "\n"
    return out


CELL_VALUES = st.sampled_from(["", "NA", "abc", "-1", "0", "1e308", "inf", "-inf", "nan", "1461.5", "99999999999",
                               "\u00e9t\u00e9", "2207", "  ", "1,5", "\"quoted, comma\""])


KINDS = ("cell", "drop_column", "truncate", "latin1", "delimiter", "extra_field", "blank_lines")


@st.composite
def corruption(draw: st.DrawFn, kind: str) -> dict:
    return {
        "table": draw(st.sampled_from(["train", "test"])),
        "kind": kind,
        "line": draw(st.integers(min_value=0, max_value=TEST_ROWS)),
        "field": draw(st.integers(min_value=0, max_value=80)),
        "value": draw(CELL_VALUES),
        "cut": draw(st.floats(min_value=0.0, max_value=1.0)),
    }


def corrupt(text: str, c: dict) -> bytes:
    lines = text.splitlines()
    line, field = c["line"] % len(lines), c["field"]
    cells = lines[line].split(",")
    if c["kind"] == "cell":
        cells[field % len(cells)] = c["value"]
        lines[line] = ",".join(cells)
    elif c["kind"] == "drop_column":
        lines = [",".join(x for i, x in enumerate(row.split(",")) if i != field % len(cells)) for row in lines]
    elif c["kind"] == "delimiter":
        lines[line] = lines[line].replace(",", ";", 1 + field % 5)
    elif c["kind"] == "extra_field":
        lines[line] += "," + c["value"]
    elif c["kind"] == "blank_lines":
        lines.insert(line, "")
    data = ("\n".join(lines) + "\n").encode("latin-1" if c["kind"] == "latin1" else "utf-8", errors="replace")
    if c["kind"] == "latin1":
        data = data.replace(b"NAmes", "N\u00c0mes".encode("latin-1"), 1)
    if c["kind"] == "truncate":
        data = data[: int(len(data) * c["cut"])]
    return data


def run_the_rest(train: pd.DataFrame, test: pd.DataFrame) -> None:
    """Features, CV, the final fit and a checked submission, at minimum size."""
    features, model, fast = plain_features(), model_params("linear"), train_params(epochs=1)
    folds = min(3, len(train))
    cross_validate(train, test, features, model, fast, split_folds(len(train), folds, 0), 0, device="cpu")
    final = fit_final(train, test, features, model, fast, 0, device="cpu")
    submission = predict_blend([final], test)
    check_submission(submission, test["Id"].to_numpy())
    assert np.isfinite(submission["SalePrice"]).all()


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_validation_fails_cleanly_or_passes_frames_the_pipeline_can_use(texts, tmp_path_factory, kind, data) -> None:
    c = data.draw(corruption(kind))
    folder = tmp_path_factory.mktemp("corrupt")
    paths = {}
    for table, text in texts.items():
        paths[table] = folder / f"{table}.csv"
        paths[table].write_bytes(corrupt(text, c) if table == c["table"] else text.encode())
    try:
        train, test = (read_csv_table(paths[t], max_bytes=CAP, allow_empty=True) for t in ("train", "test"))
        clean_train, clean_test, _ = validate_raw(train, test)
    except PipelineError as exc:
        assert str(exc).strip(), "a failure must say what is wrong"
        return
    run_the_rest(clean_train, clean_test)
