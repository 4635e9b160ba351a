"""Pandera schemas: the one place that says what each table must look like.

Raw columns and types follow Kaggle's `data_description.txt`. Numeric columns are declared
`float` and coerced, because the test file stores integer counts with missing values (e.g.
`GarageCars`) as floats; a column that cannot be coerced (text in `LotArea`) is reported as a
failure, never silently turned into NaN. Every schema is validated with `lazy=True`, so one
run reports every problem at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

ID = "Id"
TARGET = "SalePrice"

# Numeric columns with physical bounds: the data description's (areas and counts >= 0, the
# quality scales 1-10, months 1-12) plus generous upper limits far beyond any real house, so a
# unit mix-up, an overflow (1e308) or an infinity is refused instead of priced. Years stop at
# 2500: the test file holds a real `GarageYrBlt` of 2207, a typo that validation must not reject.
_AREA = {"ge": 0, "le": 100_000}  # square feet of a building part, porch, pool or garage
_COUNT = {"ge": 0, "le": 100}  # rooms, baths, kitchens, fireplaces, cars
_YEAR = {"ge": 1800, "le": 2500}
NUMERIC_COLUMNS: dict[str, dict[str, Any]] = {
    "MSSubClass": {"ge": 20, "le": 190},
    "LotFrontage": {"ge": 0, "le": 10_000}, "LotArea": {"gt": 0, "le": 50_000_000},
    "OverallQual": {"ge": 1, "le": 10}, "OverallCond": {"ge": 1, "le": 10},
    "YearBuilt": _YEAR, "YearRemodAdd": _YEAR,
    "MasVnrArea": _AREA, "BsmtFinSF1": _AREA, "BsmtFinSF2": _AREA, "BsmtUnfSF": _AREA,
    "TotalBsmtSF": _AREA, "1stFlrSF": _AREA, "2ndFlrSF": _AREA, "LowQualFinSF": _AREA,
    "GrLivArea": {"gt": 0, "le": 100_000}, "BsmtFullBath": _COUNT, "BsmtHalfBath": _COUNT,
    "FullBath": _COUNT, "HalfBath": _COUNT, "BedroomAbvGr": _COUNT, "KitchenAbvGr": _COUNT,
    "TotRmsAbvGrd": _COUNT, "Fireplaces": _COUNT, "GarageYrBlt": _YEAR, "GarageCars": _COUNT,
    "GarageArea": _AREA, "WoodDeckSF": _AREA, "OpenPorchSF": _AREA, "EnclosedPorch": _AREA,
    "3SsnPorch": _AREA, "ScreenPorch": _AREA, "PoolArea": _AREA, "MiscVal": {"ge": 0, "le": 10_000_000},
    "MoSold": {"ge": 1, "le": 12}, "YrSold": _YEAR,
}
MAX_PRICE = 100_000_000  # dollars: far above any sale in the data, below any overflow
CATEGORICAL_COLUMNS: tuple[str, ...] = (
    "MSZoning", "Street", "Alley", "LotShape", "LandContour", "Utilities", "LotConfig",
    "LandSlope", "Neighborhood", "Condition1", "Condition2", "BldgType", "HouseStyle",
    "RoofStyle", "RoofMatl", "Exterior1st", "Exterior2nd", "MasVnrType", "ExterQual",
    "ExterCond", "Foundation", "BsmtQual", "BsmtCond", "BsmtExposure", "BsmtFinType1",
    "BsmtFinType2", "Heating", "HeatingQC", "CentralAir", "Electrical", "KitchenQual",
    "Functional", "FireplaceQu", "GarageType", "GarageFinish", "GarageQual", "GarageCond",
    "PavedDrive", "PoolQC", "Fence", "MiscFeature", "SaleType", "SaleCondition",
)
# Columns every house has: a missing value here is a broken row, not an absent feature.
REQUIRED_COLUMNS = frozenset({"LotArea", "OverallQual", "OverallCond", "YearBuilt",
                              "GrLivArea", "Neighborhood", "YrSold", "MoSold"})
FEATURE_COLUMNS: tuple[str, ...] = tuple(NUMERIC_COLUMNS) + CATEGORICAL_COLUMNS


def _field_name(column: str) -> str:
    """A Python identifier for a column (`1stFlrSF` -> `c_1stFlrSF`); the alias keeps the name."""
    return column if column.isidentifier() else f"c_{column}"


def _raw_model(name: str, with_target: bool, doc: str) -> type[pa.DataFrameModel]:
    annotations: dict[str, Any] = {ID: Series[int]}
    namespace: dict[str, Any] = {"__doc__": doc, ID: pa.Field(unique=True, ge=1)}
    for column, bounds in NUMERIC_COLUMNS.items():
        annotations[_field_name(column)] = Series[float]
        namespace[_field_name(column)] = pa.Field(
            alias=column, nullable=column not in REQUIRED_COLUMNS, **bounds)
    for column in CATEGORICAL_COLUMNS:
        annotations[column] = Series[str]
        namespace[column] = pa.Field(nullable=column not in REQUIRED_COLUMNS)
    if with_target:
        annotations[TARGET] = Series[float]
        namespace[TARGET] = pa.Field(gt=0, le=MAX_PRICE)
    namespace["__annotations__"] = annotations
    namespace["Config"] = type("Config", (), {"coerce": True, "strict": True, "ordered": False})
    return type(name, (pa.DataFrameModel,), namespace)


RawTrain = _raw_model("RawTrain", with_target=True,
                      doc="train.csv: 79 features, a unique Id and a positive SalePrice.")
RawTest = _raw_model("RawTest", with_target=False,
                     doc="test.csv: the same 79 features and Id; no SalePrice (strict).")


class Submission(pa.DataFrameModel):
    """What Kaggle accepts: `Id,SalePrice`, one row per test id, positive finite prices."""

    Id: Series[int] = pa.Field(unique=True, ge=1)
    SalePrice: Series[float] = pa.Field(gt=0, le=MAX_PRICE)

    @pa.check("SalePrice", name="finite")
    def _finite(cls, prices: Series[float]) -> Series[bool]:
        return pd.Series(np.isfinite(prices.to_numpy()), index=prices.index)

    class Config:
        strict = True
        ordered = True


def fractional_ids(ids: pd.Series) -> list[Any]:
    """Ids that are numbers but not whole ones (`1461.5`): coercion to int would hide them."""
    numbers = pd.to_numeric(ids, errors="coerce")
    fractional = numbers.notna() & np.isfinite(numbers) & (numbers != np.floor(numbers))
    return ids[fractional].tolist()


FeatureMatrix = pa.DataFrameSchema(
    checks=[
        pa.Check(lambda frame: all(dtype.kind == "f" for dtype in frame.dtypes), name="float_columns",
                 error="every feature column must be a float"),
        pa.Check(lambda frame: bool(np.isfinite(frame.to_numpy(dtype=np.float64)).all()), name="finite_no_nan",
                 error="the feature matrix holds NaN or infinite values"),
    ],
    name="FeatureMatrix",
    description="The model's input: every cell a finite float, no NaN. (Frame-wide checks: "
                "a per-column dtype check over hundreds of one-hot columns costs far more.)",
)
