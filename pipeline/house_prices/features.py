"""The shared feature module: one scikit-learn transformer for CV, the final fit and prediction.

Optional well-known derived features and ordinal codes of the quality scales come first;
then numeric columns (optionally log1p'd when skewed) are mean-imputed and standardized and
text columns are one-hot encoded with an explicit "missing" category (or, with
`encoding: native`, the tree view, coded as one integer per category, -1 for a category never
seen in the fit). The transformer is fit
on training rows only (inside each fold) and applied unchanged at prediction time, where a
category never seen in training is ignored (all-zero one-hot), not an error. Removal of
training outliers is a row filter (`training_rows`), applied to training rows only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from pipeline.common.skops_files import dump_skops
from pipeline.house_prices.params import FeatureParams
from pipeline.house_prices.schemas import ID, TARGET, FeatureMatrix

MISSING = "missing"

# The ordinal scales of data_description.txt, worst to best; "NA" (read as NaN) means the
# house has no such thing (no basement, no pool) and sits below the worst grade.
QUALITY = {"NA": 0, "Po": 1, "Fa": 2, "TA": 3, "Gd": 4, "Ex": 5}
ORDINAL_SCALES: dict[str, dict[str, int]] = {
    **{c: QUALITY for c in ("ExterQual", "ExterCond", "BsmtQual", "BsmtCond", "HeatingQC", "KitchenQual",
                            "FireplaceQu", "GarageQual", "GarageCond", "PoolQC")},
    "BsmtExposure": {"NA": 0, "No": 1, "Mn": 2, "Av": 3, "Gd": 4},
    "BsmtFinType1": {"NA": 0, "Unf": 1, "LwQ": 2, "Rec": 3, "BLQ": 4, "ALQ": 5, "GLQ": 6},
    "BsmtFinType2": {"NA": 0, "Unf": 1, "LwQ": 2, "Rec": 3, "BLQ": 4, "ALQ": 5, "GLQ": 6},
    "GarageFinish": {"NA": 0, "Unf": 1, "RFn": 2, "Fin": 3},
    "Functional": {"Sal": 0, "Sev": 1, "Maj2": 2, "Maj1": 3, "Mod": 4, "Min2": 5, "Min1": 6, "Typ": 7},
}
DERIVED = ("TotalSF", "TotalBath", "TotalPorchSF", "HouseAge", "RemodAge")
# De Cock's note on the data: a few huge houses sold far below their value (partial sales).
OUTLIER_AREA, OUTLIER_PRICE = 4000, 300_000


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric by dtype *kind*: with pandas 3, text has dtype `str`, so `!= object` misleads."""
    return [c for c in frame.columns if frame[c].dtype.kind in "biuf"]


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if frame[c].dtype.kind not in "biuf"]


def text_as_object(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as plain Python objects (a copy).

    pandas 3 stores text as Arrow-backed `str`; scikit-learn's imputer and encoder convert it
    to objects on every call. CV fits and applies a transformer per fold, so converting once
    up front makes the whole CV run faster with identical features.
    """
    return frame.astype({c: object for c in categorical_columns(frame)})


def feature_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """The model's raw inputs: every column but the id and the target."""
    return raw.drop(columns=[c for c in (ID, TARGET) if c in raw.columns])


class SkewedLog1p(TransformerMixin, BaseEstimator):
    """`log1p` of the columns whose |skew| on the *fit* rows exceeds `threshold`.

    Areas and prices are right-skewed; on a log scale a linear model of log price fits them
    far better and outliers pull less. Which columns
    are skewed is learned in `fit`, so inside CV it is estimated on the training fold only.
    NaN passes through (imputed afterwards); negative values are clipped to 0 first.
    """

    def __init__(self, threshold: float = 0.75) -> None:
        self.threshold = threshold

    def fit(self, x: pd.DataFrame, y: object = None) -> SkewedLog1p:
        frame = pd.DataFrame(x)
        skew = frame.skew(numeric_only=True).abs()
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.skewed_ = np.asarray([c for c in frame.columns if skew.get(c, 0.0) > self.threshold], dtype=object)
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame:
        frame = pd.DataFrame(x).copy()
        cols = list(self.skewed_)
        if cols:
            frame[cols] = np.log1p(frame[cols].clip(lower=0))
        return frame

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return self.feature_names_in_


class DerivedFeatures(TransformerMixin, BaseEstimator):
    """Adds the derived features competitors use: total living area, total bathrooms, porch
    area, and the house's age and years since remodel at sale. Stateless (nothing is fit).
    Missing parts (no basement) count as 0.
    """

    def fit(self, x: pd.DataFrame, y: object = None) -> DerivedFeatures:
        self.feature_names_in_ = np.asarray(x.columns, dtype=object)
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame:
        part = lambda *cols: sum(x[c].fillna(0) for c in cols)  # noqa: E731
        derived = pd.DataFrame({
            "TotalSF": part("TotalBsmtSF", "1stFlrSF", "2ndFlrSF"),
            "TotalBath": part("FullBath", "BsmtFullBath") + 0.5 * part("HalfBath", "BsmtHalfBath"),
            "TotalPorchSF": part("OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch", "WoodDeckSF"),
            "HouseAge": (x["YrSold"] - x["YearBuilt"]).astype(float),
            "RemodAge": (x["YrSold"] - x["YearRemodAdd"]).astype(float),
        }, index=x.index)
        return pd.concat([x, derived], axis=1)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray([*self.feature_names_in_, *DERIVED], dtype=object)


class OrdinalScales(TransformerMixin, BaseEstimator):
    """Numeric codes of the quality/condition/finish scales (`ORDINAL_SCALES`).

    `mode="add"` keeps the text column (one-hot later) and adds `<col>_ord`; `"replace"`
    swaps the text for the code. An unknown grade becomes NaN and is imputed like any gap.
    Stateless: the scales come from the data description, not from the rows.
    """

    def __init__(self, mode: str = "add") -> None:
        self.mode = mode

    def fit(self, x: pd.DataFrame, y: object = None) -> OrdinalScales:
        if self.mode not in ("add", "replace"):
            raise ValueError(f"ordinal mode must be add or replace, got {self.mode!r}")
        self.feature_names_in_ = np.asarray(x.columns, dtype=object)
        self.columns_ = [c for c in ORDINAL_SCALES if c in x.columns]
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame:
        codes = {}
        for column in self.columns_:
            scale = ORDINAL_SCALES[column]
            text = x[column].to_numpy(dtype=object)
            values = np.array([scale.get(v, np.nan) for v in text], dtype=np.float64)  # unknown grade: NaN
            values[pd.isna(text)] = scale.get("NA", np.nan)  # missing: "no such thing", below the worst
            codes[self._name(column)] = values
        # One concat, not a column insert per scale: CV runs this twice per fold.
        coded = pd.DataFrame(codes, index=x.index)
        if self.mode == "add":
            return pd.concat([x, coded], axis=1)
        frame = x.copy()
        frame[list(coded.columns)] = coded
        return frame

    def _name(self, column: str) -> str:
        return f"{column}_ord" if self.mode == "add" else column

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        names = list(self.feature_names_in_)
        if self.mode == "add":
            names += [self._name(c) for c in self.columns_]
        return np.asarray(names, dtype=object)


class ClipToFitRange(TransformerMixin, BaseEstimator):
    """Clip every feature to the [min, max] it had on the fit rows.

    A house bigger than any seen in training (the 11,752 sq ft partial sale) otherwise gets
    a price extrapolated far beyond the data; clipped, the model answers "like the biggest
    house it knows". The gain is on the fold that holds the two giant houses
    (docs/results/features.md measures the feature options).
    """

    def fit(self, x: np.ndarray, y: object = None) -> ClipToFitRange:
        values = np.asarray(x, dtype=np.float64)
        self.low_, self.high_ = values.min(axis=0), values.max(axis=0)
        self.n_features_in_ = values.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(x, dtype=np.float64), self.low_, self.high_)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


class CapWithinGroup(TransformerMixin, BaseEstimator):
    """Cap every numeric feature at the largest value it had, on the fit rows, among houses
    of the same group (`Neighborhood`); groups with fewer than `min_rows` fit rows, and
    groups never seen, are left alone.

    `ClipToFitRange` stops extrapolation past the whole market; this stops it past a
    neighbourhood's. A 5,600 sq ft quality-10 house in Edwards, where no other house tops
    2,200 sq ft, is priced like Edwards' best houses instead of like NoRidge's mansions: the
    two partial sales of the training data (and one test house) are exactly that. Only the
    upper end is capped: small houses in good neighbourhoods are ordinary.
    """

    def __init__(self, by: str = "Neighborhood", min_rows: int = 30) -> None:
        self.by = by
        self.min_rows = min_rows

    def fit(self, x: pd.DataFrame, y: object = None) -> CapWithinGroup:
        self.feature_names_in_ = np.asarray(x.columns, dtype=object)
        self.columns_ = np.asarray(numeric_columns(x), dtype=object)
        sizes = x.groupby(self.by).size()
        high = x.groupby(self.by)[list(self.columns_)].max()
        kept = sizes.index[sizes >= self.min_rows]
        # Plain arrays, not pandas objects: the fitted transformer is persisted with skops.
        self.groups_ = np.asarray(kept, dtype=object)
        self.high_ = high.loc[kept].to_numpy(dtype=np.float64)
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame:
        frame = x.copy()
        row = pd.Index(self.groups_).get_indexer(x[self.by])
        if not (row >= 0).any() or not len(self.columns_):
            return frame
        columns = list(self.columns_)
        values = x[columns].to_numpy(dtype=np.float64)
        # Rows of groups left alone get an infinite cap; NaN stays NaN (imputed later).
        high = np.vstack([self.high_, np.full((1, len(columns)), np.inf)])[row]
        frame[columns] = np.where(values > high, high, values)
        return frame

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return self.feature_names_in_


def fit_price_cap(frame: pd.DataFrame, rows: np.ndarray, params: FeatureParams) -> dict[str, float] | None:
    """With `price_cap`: the highest sale price among the rows `rows` of each `Neighborhood`
    that has at least `neighborhood_min_rows` of them (plain JSON-ready data, saved with the
    model); else None.

    `neighborhood_cap` caps each feature at its neighbourhood's maximum, but those maxima come
    from different houses: a house that tops its neighbourhood in every feature at once is
    still priced above any house that neighbourhood ever sold (the two partial sales of
    Edwards, where no house sold above $320k, come out near $400k-$470k). Capping the price
    itself says what the features cannot: nothing in this neighbourhood sold for more.
    """
    if not params.price_cap:
        return None
    fit = frame.iloc[rows]
    groups = fit.groupby("Neighborhood")[TARGET].agg(["max", "size"])
    kept = groups[groups["size"] >= params.neighborhood_min_rows]
    return {str(name): float(price) for name, price in kept["max"].items()}


def apply_price_cap(prices: np.ndarray, raw: pd.DataFrame, cap: dict[str, float] | None) -> np.ndarray:
    """`prices` of the houses `raw`, each at most its neighbourhood's cap (others unchanged)."""
    if cap is None:
        return prices
    limit = raw["Neighborhood"].map(cap).to_numpy(dtype=np.float64)  # NaN: no cap for this neighbourhood
    return np.fmin(prices, limit)  # fmin ignores the NaN


def outlier_rows(frame: pd.DataFrame) -> np.ndarray:
    """Training houses over 4000 sq ft that sold under $300k (boolean mask)."""
    if TARGET not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return ((frame["GrLivArea"] > OUTLIER_AREA) & (frame[TARGET] < OUTLIER_PRICE)).to_numpy()


def training_rows(frame: pd.DataFrame, rows: np.ndarray, params: FeatureParams) -> np.ndarray:
    """The positions among `rows` a model may learn from: all, or all but the outliers.

    Applied to training rows only; validation and test rows are always scored.
    """
    if not params.drop_outliers:
        return rows
    return rows[~outlier_rows(frame)[rows]]


def build_transformer(params: FeatureParams) -> Pipeline:
    """An unfitted transformer; fit it with `fit_transformer`."""
    steps = [SkewedLog1p(params.skew_threshold)] if params.log_skewed else []
    native = params.encoding == "native"
    # Native codes are labels, not sizes: clipping them would turn an unseen category (-1) into
    # the first one, so the tree view clips its numeric columns only.
    numeric = make_pipeline(*steps, SimpleImputer(strategy="mean"), StandardScaler(),
                            *([ClipToFitRange()] if native and params.clip else []))
    codes = (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64) if native
             else OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64))
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value=MISSING, keep_empty_features=True), codes)
    encode = ColumnTransformer(
        [("numeric", numeric, numeric_columns), ("categorical", categorical, categorical_columns)],
        verbose_feature_names_out=False,
    )
    # NumPy output: sklearn's pandas output doubles the cost of a fit/transform here, and
    # CV runs one per fold; `transform` names the columns once at the end instead.
    steps = [("derived", DerivedFeatures())] if params.derived else []
    if params.ordinal != "none":
        steps.append(("ordinal", OrdinalScales(params.ordinal)))
    if params.neighborhood_cap:
        steps.append(("cap", CapWithinGroup("Neighborhood", params.neighborhood_min_rows)))
    steps.append(("encode", encode))
    if params.clip and not native:
        steps.append(("clip", ClipToFitRange()))
    return Pipeline(steps)


def native_categorical(transformer: Pipeline, params: FeatureParams) -> np.ndarray:
    """Which output columns of a fitted transformer hold native category codes (a boolean mask;
    all false for one-hot, whose columns are ordinary 0/1 numbers)."""
    columns = encoder(transformer).output_indices_
    width = max(s.stop for s in columns.values())
    mask = np.zeros(width, dtype=bool)
    if params.encoding == "native":
        mask[columns["categorical"]] = True
    return mask


def encoder(transformer: Pipeline) -> ColumnTransformer:
    """The fitted column encoder at the end of the transformer (for inspection)."""
    return transformer.named_steps["encode"]


def fit_rows(train: pd.DataFrame, test: pd.DataFrame | None, params: FeatureParams) -> pd.DataFrame:
    """The rows the transformer learns from: training rows, plus test rows when transductive."""
    if params.fit_on == "train+test" and test is not None:
        return pd.concat([feature_frame(train), feature_frame(test)], ignore_index=True)
    return feature_frame(train)


def fit_transformer(train: pd.DataFrame, test: pd.DataFrame | None, params: FeatureParams) -> Pipeline:
    """Fit on `train` rows (and the unlabeled `test` rows for `fit_on: train+test`)."""
    return build_transformer(params).fit(fit_rows(train, test, params))


def transform(transformer: Pipeline, raw: pd.DataFrame) -> pd.DataFrame:
    """Features of `raw` rows, checked by the FeatureMatrix schema (finite floats, no NaN)."""
    values = np.asarray(transformer.transform(feature_frame(raw)), dtype=np.float64)
    return _checked(transformer, values, raw.index)


def fit_and_transform(frame: pd.DataFrame, fit_idx: np.ndarray, test: pd.DataFrame | None,
                      params: FeatureParams) -> tuple[Pipeline, pd.DataFrame]:
    """Fit on the rows `fit_idx` of `frame` (plus `test` when transductive) and return the
    features of *every* row of `frame`: the same result as `fit_transformer` then
    `transform`, but the fit rows' features come from the fit itself instead of a second
    pass (a fold's training rows are 80% of the frame)."""
    transformer = build_transformer(params)
    fitted = np.asarray(transformer.fit_transform(fit_rows(frame.iloc[fit_idx], test, params)), dtype=np.float64)
    values = np.empty((len(frame), fitted.shape[1]))
    values[fit_idx] = fitted[: len(fit_idx)]
    rest = np.setdiff1d(np.arange(len(frame)), fit_idx)
    if len(rest):
        values[rest] = transformer.transform(feature_frame(frame.iloc[rest]))
    return transformer, _checked(transformer, values, frame.index)


def _checked(transformer: Pipeline, values: np.ndarray, index: pd.Index) -> pd.DataFrame:
    matrix = pd.DataFrame(values, columns=transformer.get_feature_names_out(), index=index)
    return FeatureMatrix.validate(matrix, lazy=True)


def save_transformer(transformer: Pipeline, path: Path) -> None:
    """Persist with skops: a safe format (no arbitrary code at load), unlike pickle/joblib;
    written canonically, so the same fit gives the same bytes (`dump_skops`)."""
    dump_skops(transformer, path)


def load_transformer(path: Path) -> Pipeline:
    """Load a transformer saved by `save_transformer`, trusting only the types we wrote."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    allowed = [t for t in untrusted if t.startswith(("sklearn.", "numpy.", "pipeline.house_prices.features."))
               or t in {"builtins.function", "builtins.object"}]
    refused = sorted(set(untrusted) - set(allowed))
    if refused:
        raise ValueError(f"{path} holds types outside scikit-learn/numpy: {refused}")
    return sio.load(path, trusted=allowed)
