"""The residual report: worst houses, error by group (shares that add up), and the stage's files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import SHIPPED_PARAMS

from pipeline.house_prices.residuals import PRICE_BIN, error_by, residual_frame, worst_houses

COLUMNS = ["Neighborhood", "SaleCondition", "OverallQual", "GrLivArea"]


def _oof(train: pd.DataFrame) -> pd.DataFrame:
    """Out-of-fold-like predictions: the true price times a known error per house."""
    rng = np.random.default_rng(0)
    error = rng.normal(0, 0.1, len(train))
    error[:3] = [0.9, -0.8, 0.7]  # three houses far off
    prices = train["SalePrice"].to_numpy()
    return pd.DataFrame({"Id": train["Id"], "SalePrice": prices, "oof_prediction": prices * np.exp(error),
                         "oof_member0": prices * np.exp(error / 2)})


def test_errors_are_log_predicted_minus_actual_and_the_worst_come_first(clean_frames) -> None:
    train, _ = clean_frames
    oof = _oof(train)
    residuals = residual_frame(oof, train, COLUMNS, price_bins=10)
    expected = np.log(oof["oof_prediction"] / oof["SalePrice"])
    np.testing.assert_allclose(residuals["log_error"], expected)
    np.testing.assert_allclose(residuals["member0_log_error"], expected / 2)
    worst = worst_houses(residuals, 3)
    assert list(worst["Id"]) == list(train["Id"][:3]) and list(worst["log_error"].round(6)) == [0.9, -0.8, 0.7]
    assert list(worst.columns[-len(COLUMNS):]) == COLUMNS
    deciles = residuals[PRICE_BIN].value_counts()
    assert set(deciles.index) == set(range(1, 11)) and deciles.between(140, 152).all()


@pytest.mark.parametrize("column", ["Neighborhood", "OverallQual", PRICE_BIN])
def test_group_errors_add_up_to_the_overall_score(clean_frames, column: str) -> None:
    train, _ = clean_frames
    residuals = residual_frame(_oof(train), train, COLUMNS, price_bins=10)
    table = error_by(residuals, column)
    assert table["houses"].sum() == len(train) and table["share"].sum() == pytest.approx(1.0)
    overall = np.sqrt((residuals["log_error"] ** 2).mean())
    assert np.sqrt((table["houses"] * table["log_rmse"] ** 2).sum() / len(train)) == pytest.approx(overall)
    assert table["share"].is_monotonic_decreasing
    first = table.iloc[0]
    rows = residuals[residuals[column] == first[column]]
    assert first["bias"] == pytest.approx(rows["log_error"].mean())
    if column == PRICE_BIN:
        assert (table["price_low"] <= table["price_high"]).all()


def test_an_unknown_column_is_named(clean_frames) -> None:
    train, _ = clean_frames
    with pytest.raises(KeyError, match="Neighbourhood"):
        residual_frame(_oof(train), train, ["Neighbourhood"], price_bins=10)


def test_the_stage_writes_tables_metrics_and_a_picture(clean_frames, tmp_path, monkeypatch) -> None:
    from pipeline.common.paths import ProjectPaths
    from pipeline.stages import residuals as stage

    train, _ = clean_frames
    paths = ProjectPaths(tmp_path)
    paths.interim_dir.mkdir(parents=True)
    paths.processed_dir.mkdir(parents=True)
    train.to_parquet(paths.clean_train)
    _oof(train).to_csv(paths.oof_predictions, index=False)
    paths.params.write_text(yaml.safe_dump(SHIPPED_PARAMS))
    monkeypatch.chdir(tmp_path)
    stage.main()

    shipped = SHIPPED_PARAMS["residuals"]
    worst = pd.read_csv(paths.worst_houses)
    assert len(worst) == shipped["worst"] and set(shipped["show"]) <= set(worst.columns)
    for column in [*shipped["by"], PRICE_BIN]:
        assert pd.read_csv(paths.residuals_by(column))["houses"].sum() == len(train)
    metrics = json.loads(paths.residuals_metrics.read_text())
    assert metrics["log_rmse_all"] == pytest.approx(np.sqrt(np.mean(np.log(_oof(train)["oof_prediction"]
                                                                           / train["SalePrice"]) ** 2)))
    assert 0 < metrics["worst_houses_share"] < 1 and metrics["log_rmse_without_worst"] < metrics["log_rmse_all"]
    assert [t["by"] for t in metrics["top_shares"]] == [*shipped["by"], PRICE_BIN]
    assert paths.residuals_png.stat().st_size > 10_000
