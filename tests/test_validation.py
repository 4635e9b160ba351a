"""The pandera models: the real files pass; every kind of damage is reported, all at once."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from pipeline.house_prices.schemas import FeatureMatrix, RawTest, RawTrain, Submission
from pipeline.house_prices.validation import validate_raw
from pipeline.tabular.validation import ValidationFailed


def _damage(frame: pd.DataFrame, with_price: bool) -> pd.DataFrame:
    """Five rows with a missing column, a wrong dtype, a duplicate id and (train) a bad price."""
    bad = frame.head(5).drop(columns=["Street"]).copy()
    bad["LotArea"] = bad["LotArea"].astype(object)
    bad.loc[0, "LotArea"] = "large"
    bad.loc[1, "Id"] = bad.loc[0, "Id"]
    if with_price:
        bad.loc[2, "SalePrice"] = 0
    return bad


def _failures(model: type[pa.DataFrameModel], frame: pd.DataFrame) -> pd.DataFrame:
    with pytest.raises(pa.errors.SchemaErrors) as err:
        model.validate(frame, lazy=True)
    return err.value.failure_cases


def test_the_real_competition_files_pass(raw_train: pd.DataFrame, raw_test: pd.DataFrame) -> None:
    train, test, report = validate_raw(raw_train, raw_test)
    assert report.ok and len(train) == 1460 and len(test) == 1459
    assert train["GarageCars"].dtype == "float64" and train["Neighborhood"].dtype.kind not in "iuf"


@pytest.mark.parametrize(("model", "with_price"), [(RawTrain, True), (RawTest, False)], ids=["train", "test"])
def test_each_raw_model_reports_every_failure_at_once(raw_train: pd.DataFrame, raw_test: pd.DataFrame,
                                                      model: type[pa.DataFrameModel], with_price: bool) -> None:
    cases = _failures(model, _damage(raw_train if with_price else raw_test, with_price))
    checks = set(cases["check"].astype(str))
    assert "column_in_dataframe" in checks  # Street is missing
    assert any(c.startswith("coerce_dtype('float64')") for c in checks)  # "large" in LotArea
    assert "field_uniqueness" in checks  # duplicate Id
    if with_price:
        assert "greater_than(0)" in set(cases.loc[cases["column"] == "SalePrice", "check"])


def test_sale_price_belongs_to_train_only(raw_test: pd.DataFrame) -> None:
    cases = _failures(RawTest, raw_test.head(3).assign(SalePrice=100_000.0))
    assert "column_in_schema" in set(cases["check"]) and "SalePrice" in set(cases["failure_case"])


def test_train_without_price_is_rejected(raw_train: pd.DataFrame) -> None:
    cases = _failures(RawTrain, raw_train.head(3).drop(columns=["SalePrice"]))
    assert "SalePrice" in set(cases["failure_case"])


def test_validate_raw_collects_both_tables_and_overlapping_ids(raw_train: pd.DataFrame, raw_test: pd.DataFrame) -> None:
    test = raw_test.head(4).copy()
    test.loc[0, "Id"] = int(raw_train["Id"].iloc[0])
    with pytest.raises(ValidationFailed) as err:
        validate_raw(_damage(raw_train, True), test)
    report = err.value.report
    tables = {(f["table"], f["check"]) for f in report.failures}
    assert ("test", "ids_disjoint_from_train") in tables
    assert ("train", "field_uniqueness") in tables
    assert "ids_disjoint_from_train" in str(err.value) and report.to_dict()["n_failures"] == len(report.failures)


def test_feature_matrix_schema_rejects_nan_and_infinity() -> None:
    FeatureMatrix.validate(pd.DataFrame({"a": [0.0, 1.0]}))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(pa.errors.SchemaErrors):
            FeatureMatrix.validate(pd.DataFrame({"a": [0.0, bad]}), lazy=True)


def test_submission_schema_requires_positive_finite_prices_and_unique_ids() -> None:
    Submission.validate(pd.DataFrame({"Id": [1461, 1462], "SalePrice": [1.0e5, 2.0e5]}))
    bad = pd.DataFrame({"Id": [1461, 1461, 1463], "SalePrice": [-1.0, float("inf"), 1.0]})
    checks = set(_failures(Submission, bad)["check"].astype(str))
    assert {"field_uniqueness", "greater_than(0)", "finite"} <= checks
