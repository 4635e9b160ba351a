"""The inferred schema: real public tables pass through the YAML file; every kind of damage is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import palmerpenguins
import pandas as pd
import pandera.pandas as pa
import pytest
import yaml
from vega_datasets import data as vega_data

from pipeline.tabular.schema import (
    MARGIN,
    MAX_LISTED_CATEGORIES,
    SchemaFileError,
    infer_schema,
    read_schema,
    test_schema,
    validate_tables,
    write_schema,
)
from pipeline.tabular.validation import ValidationFailed

# vega_datasets calls a pandas reader option pandas 3 deprecates; nothing this module can change.
pytestmark = pytest.mark.filterwarnings("ignore:The 'convert_dates' keyword:Warning")

ID = "id"
PENGUIN_TARGET = "Species"
CAR_TARGET = "Miles_per_Gallon"


def _kaggle_split(frame: pd.DataFrame, target: str, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every fourth row to test without the target, the rest with a known target to train; both
    written to CSV and read back, so the tables have the dtypes a competition's files get."""
    frame = frame.assign(**{ID: range(1, len(frame) + 1)})[[ID, *frame.columns]]
    is_test = frame[ID] % 4 == 0
    train = frame[~is_test & frame[target].notna()]
    test = frame[is_test].drop(columns=[target])
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return pd.read_csv(tmp_path / "train.csv"), pd.read_csv(tmp_path / "test.csv")


@pytest.fixture
def penguins(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _kaggle_split(palmerpenguins.load_penguins_raw(), PENGUIN_TARGET, tmp_path)


@pytest.fixture
def cars(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _kaggle_split(vega_data.cars(), CAR_TARGET, tmp_path)


def _penguin_schema(penguins: tuple[pd.DataFrame, pd.DataFrame]) -> pa.DataFrameSchema:
    return infer_schema(*penguins, id_column=ID, target=PENGUIN_TARGET)


def _car_schema(cars: tuple[pd.DataFrame, pd.DataFrame]) -> pa.DataFrameSchema:
    return infer_schema(*cars, id_column=ID, target=CAR_TARGET)


def _failures(schema: pa.DataFrameSchema, train: pd.DataFrame, test: pd.DataFrame, target: str) -> pd.DataFrame:
    with pytest.raises(ValidationFailed) as err:
        validate_tables(schema, train, test, id_column=ID, target=target)
    return pd.DataFrame(err.value.report.failures)


def _checks_on(failures: pd.DataFrame, table: str, column: str) -> set[str]:
    return set(failures.loc[(failures["table"] == table) & (failures["column"] == column), "check"])


@pytest.mark.parametrize(("dataset", "target"), [("penguins", PENGUIN_TARGET), ("cars", CAR_TARGET)])
def test_the_inferred_schema_validates_its_own_tables_after_a_yaml_round_trip(
        dataset: str, target: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    train, test = request.getfixturevalue(dataset)
    schema = infer_schema(train, test, id_column=ID, target=target)
    write_schema(schema, tmp_path / "schema.yaml")
    read = read_schema(tmp_path / "schema.yaml")

    assert read == schema
    clean_train, clean_test, report = validate_tables(read, train, test, id_column=ID, target=target)
    assert report.ok and report.rows == {"train": len(train), "test": len(test)}
    expected_train, expected_test, _ = validate_tables(schema, train, test, id_column=ID, target=target)
    pd.testing.assert_frame_equal(clean_train, expected_train)
    pd.testing.assert_frame_equal(clean_test, expected_test)
    assert list(read.columns) == list(train.columns) and target not in test_schema(read, target).columns


def test_columns_named_with_spaces_parentheses_and_slashes_survive_the_yaml(
        penguins: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    write_schema(_penguin_schema(penguins), tmp_path / "schema.yaml")
    columns = read_schema(tmp_path / "schema.yaml").columns
    assert columns["Delta 15 N (o/oo)"].dtype == _penguin_schema(penguins).columns["Delta 15 N (o/oo)"].dtype
    assert {"Culmen Length (mm)", "Body Mass (g)", "Delta 13 C (o/oo)"} <= set(columns)


def test_the_yaml_file_is_readable_text_that_opens_with_the_header(
        penguins: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    write_schema(_penguin_schema(penguins), path)
    text = path.read_text(encoding="utf-8")

    assert text.startswith("# Inferred by `kpipe new`")
    assert f"# margin: {MARGIN}" in text and "tighten" in text
    assert "Culmen Length (mm):" in text and "in_range:" in text and "isin:" in text
    assert "Biscoe" in yaml.safe_load(text)["columns"]["Island"]["isin"]
    assert not list(tmp_path.glob("*.part")), "the atomic write leaves no temporary file"


def test_the_header_survives_reading_back_and_writing_again(
        penguins: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    schema = infer_schema(*penguins, id_column=ID, target=PENGUIN_TARGET, margin=0.25)
    write_schema(schema, tmp_path / "first.yaml")
    write_schema(read_schema(tmp_path / "first.yaml"), tmp_path / "second.yaml")
    assert (tmp_path / "second.yaml").read_text() == (tmp_path / "first.yaml").read_text()
    assert "# margin: 0.25" in (tmp_path / "second.yaml").read_text()


def test_numeric_ranges_widen_by_at_least_the_margin_and_ints_round_to_whole_numbers(
        cars: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = cars
    schema = _car_schema(cars)
    for column in ("Displacement", "Weight_in_lbs", "Cylinders", CAR_TARGET):
        values = pd.concat([train[column], test.get(column, pd.Series(dtype=float))]).dropna()
        pad = MARGIN * (values.max() - values.min())
        (check,) = schema.columns[column].checks
        assert check.statistics["min_value"] <= values.min() - pad
        assert check.statistics["max_value"] >= values.max() + pad
    weight = schema.columns["Weight_in_lbs"].checks[0].statistics
    assert schema.columns["Weight_in_lbs"].dtype == pa.Column("int64").dtype
    assert all(isinstance(weight[key], int) for key in ("min_value", "max_value"))
    assert schema.columns[ID].checks == [] and schema.columns[ID].unique and not schema.columns[ID].nullable


def test_a_constant_column_is_widened_by_the_margin_of_its_value_or_by_one_around_zero() -> None:
    train = pd.DataFrame({ID: [1, 2, 3], "five": [5, 5, 5], "zero": [0.0, 0.0, 0.0], "y": [1.0, 2.0, 3.0]})
    schema = infer_schema(train, train.drop(columns=["y"]).assign(**{ID: [4, 5, 6]}), id_column=ID, target="y")
    five, zero = (schema.columns[name].checks[0].statistics for name in ("five", "zero"))
    assert (five["min_value"], five["max_value"]) == (4, 6)
    assert (zero["min_value"], zero["max_value"]) == (-1.0, 1.0)


def test_a_value_outside_the_widened_range_fails_naming_its_column(
        penguins: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = penguins
    schema = _penguin_schema(penguins)
    too_heavy = schema.columns["Body Mass (g)"].checks[0].statistics["max_value"] + 1
    failures = _failures(schema, train, test.assign(**{"Body Mass (g)": too_heavy}), PENGUIN_TARGET)
    assert any("in_range" in check for check in _checks_on(failures, "test", "Body Mass (g)"))
    assert set(failures["column"]) == {"Body Mass (g)"}


def test_an_unseen_category_in_a_listed_column_fails(penguins: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = penguins
    test = test.copy()
    test.loc[test.index[0], "Island"] = "Atlantis"
    failures = _failures(_penguin_schema(penguins), train, test, PENGUIN_TARGET)
    assert any("isin" in check for check in _checks_on(failures, "test", "Island"))
    assert "Atlantis" in set(failures["failure_case"])


def test_a_duplicated_id_fails(penguins: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = penguins
    train = train.copy()
    train.loc[train.index[1], ID] = train.loc[train.index[0], ID]
    failures = _failures(_penguin_schema(penguins), train, test, PENGUIN_TARGET)
    assert "field_uniqueness" in _checks_on(failures, "train", ID)


def test_a_missing_value_in_a_column_that_had_none_fails(cars: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = cars
    test = test.copy()
    test.loc[test.index[0], "Acceleration"] = np.nan
    failures = _failures(_car_schema(cars), train, test, CAR_TARGET)
    assert "not_nullable" in _checks_on(failures, "test", "Acceleration")


def test_a_test_table_missing_a_training_column_fails_naming_it(penguins: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = penguins
    failures = _failures(_penguin_schema(penguins), train, test.drop(columns=["Culmen Length (mm)"]), PENGUIN_TARGET)
    assert "column_in_dataframe" in _checks_on(failures, "test", "Culmen Length (mm)")


def test_a_missing_target_fails(cars: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    train, test = cars
    unlabelled = pd.read_csv(tmp_path / "train.csv").head(3).assign(**{CAR_TARGET: np.nan, ID: [-1, -2, -3]})
    failures = _failures(_car_schema(cars), pd.concat([train, unlabelled], ignore_index=True), test, CAR_TARGET)
    assert "not_nullable" in _checks_on(failures, "train", CAR_TARGET)


def test_a_fraction_in_an_integer_column_fails_instead_of_being_truncated(
        cars: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = cars
    test = test.astype({"Weight_in_lbs": "float64"})
    test.loc[test.index[0], "Weight_in_lbs"] = 3500.5
    failures = _failures(_car_schema(cars), train, test, CAR_TARGET)
    assert "integral" in _checks_on(failures, "test", "Weight_in_lbs")


def test_every_failure_of_both_tables_is_reported_at_once(penguins: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = penguins
    train = train.assign(Extra=1)
    train.loc[train.index[0], PENGUIN_TARGET] = np.nan
    test = test.drop(columns=["Island"]).copy()
    test.loc[test.index[0], "Sex"] = "UNKNOWN"
    failures = _failures(_penguin_schema(penguins), train, test, PENGUIN_TARGET)
    found = {(row.table, row.column) for row in failures.itertuples()}
    assert {("train", "Extra"), ("train", PENGUIN_TARGET), ("test", "Island"), ("test", "Sex")} <= found


def test_a_column_with_many_distinct_values_gets_no_category_list(cars: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = cars
    assert pd.concat([train["Name"], test["Name"]]).nunique() > MAX_LISTED_CATEGORIES
    schema = _car_schema(cars)
    assert schema.columns["Name"].checks == []
    (origin,) = schema.columns["Origin"].checks
    assert origin.statistics["allowed_values"] == ["Europe", "Japan", "USA"]


def test_an_integer_column_with_a_gap_only_in_test_is_inferred_float(cars: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = cars
    test = test.astype({"Cylinders": "float64"})
    test.loc[test.index[0], "Cylinders"] = np.nan
    schema = infer_schema(train, test, id_column=ID, target=CAR_TARGET)
    assert train["Cylinders"].dtype == "int64"
    assert schema.columns["Cylinders"].dtype == pa.Column("float64").dtype and schema.columns["Cylinders"].nullable
    clean_train, _, report = validate_tables(schema, train, test, id_column=ID, target=CAR_TARGET)
    assert report.ok and clean_train["Cylinders"].dtype == "float64"


def test_the_target_and_the_id_are_never_nullable(penguins: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    schema = _penguin_schema(penguins)
    assert not schema.columns[PENGUIN_TARGET].nullable and not schema.columns[ID].nullable
    assert schema.columns["Sex"].nullable and schema.columns["Comments"].nullable


def test_the_test_schema_drops_every_target() -> None:
    train = pd.DataFrame({ID: [1, 2], "x": [0.5, 1.5], "a": [1.0, 2.0], "b": ["u", "v"]})
    schema = infer_schema(train, train[[ID, "x"]], id_column=ID, target=["a", "b"])
    assert list(test_schema(schema, ["a", "b"]).columns) == [ID, "x"]
    assert list(schema.columns) == [ID, "x", "a", "b"]


@pytest.mark.parametrize("content", ["columns: [unclosed", "- a list\n- not a schema\n",
                                     "columns:\n  x:\n    dtype: nonsense\n"],
                         ids=["unparseable", "not-a-mapping", "unknown-dtype"])
def test_a_garbage_yaml_file_is_a_schema_file_error_naming_it(content: str, tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SchemaFileError, match="schema.yaml"):
        read_schema(path)


def test_a_missing_schema_file_is_a_schema_file_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SchemaFileError, match="absent.yaml"):
        read_schema(tmp_path / "absent.yaml")
