"""Generic features of any competition table, decided from the training rows a transformer sees.

Every column but the id and the target gets a role from its values on the training rows:

- numeric: median imputation with a missing-indicator, a signed `log1p` where the column is
  skewed, standardization (one-hot encoding), or the raw values with NaN kept (native);
- text with at most `max_onehot` values: integer codes of the values seen (`TextCodes`), then
  one-hot with unseen and rare values grouped into one `infrequent` column (one-hot), or the
  codes themselves, unseen and missing as NaN, LightGBM's missing (native);
- text with more values, but repeated across rows: target-encoded (scikit-learn's
  `TargetEncoder`, whose `fit_transform` cross-fits so a row never sees its own target);
- text that is nearly unique per row (names, ticket numbers, free text; more than
  `text_unique_ratio` of the rows distinct): dropped. Hashing would keep the column as
  thousands of sparse ids that no fold generalises from, and one-hot would blow the matrix up
  by one column per row; a competitor who sees signal in it writes a hook that extracts it
  (`pipeline.tabular.hooks`).

The transformer is fit inside each fold (`cv.py`), so every statistic (medians, skew, the
categories, the target encoding) comes from that fold's training rows only. Matrices are
float32: Playground tables have a million rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

from pipeline.tabular.params import TabularFeatureParams

ENCODINGS = ("onehot", "native")


@dataclass(frozen=True)
class Roles:
    """The columns of each role, as the training rows decided them."""

    numeric: list[str]
    onehot: list[str]
    target_encoded: list[str]
    dropped: list[str]

    def to_dict(self) -> dict[str, list[str]]:
        return {"numeric": self.numeric, "onehot": self.onehot, "target_encoded": self.target_encoded,
                "dropped": self.dropped}


def column_roles(frame: pd.DataFrame, params: TabularFeatureParams) -> Roles:
    """Each feature column's role from its values in `frame` (the training rows)."""
    numeric, onehot, encoded, dropped = [], [], [], []
    rows = max(len(frame), 1)
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            numeric.append(column)
            continue
        distinct = values.nunique(dropna=True)
        if distinct <= params.max_onehot:
            onehot.append(column)
        elif distinct / rows > params.text_unique_ratio:
            dropped.append(column)
        else:
            encoded.append(column)
    return Roles(numeric, onehot, encoded, dropped)


class SignedLog(BaseEstimator, TransformerMixin):
    """`sign(x) * log1p(|x|)` on the columns whose training skew passes `threshold`; float32 in
    and out (the skew itself in float64, one column at a time), so a million rows are not
    copied to double precision."""

    def __init__(self, threshold: float = 0.75, enabled: bool = True) -> None:
        self.threshold, self.enabled = threshold, enabled

    def fit(self, x: np.ndarray, y: Any = None) -> SignedLog:
        x = np.asarray(x, dtype=np.float32)
        skew = np.array([pd.Series(x[:, j], dtype=np.float64).skew() if len(x) > 2 else 0.0
                         for j in range(x.shape[1])])
        self.skewed_ = self.enabled & (np.abs(np.nan_to_num(skew)) > self.threshold)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=np.float32)
        x[:, self.skewed_] = np.sign(x[:, self.skewed_]) * np.log1p(np.abs(x[:, self.skewed_]))
        return x

    def get_feature_names_out(self, names: Any = None) -> np.ndarray:
        return np.asarray(names, dtype=object)


MISSING, UNSEEN = -1, -2


class TextCodes(BaseEstimator, TransformerMixin):
    """Text columns as int32 codes of the values seen at fit (missing: -1, unseen: -2).

    The encoders after it (one-hot, target encoding) then work on integers, not on millions of
    Python strings; a tree member reads the codes themselves, negative ones as missing.
    """

    def fit(self, x: Any, y: Any = None) -> TextCodes:
        frame = pd.DataFrame(x)
        self.categories_ = [sorted(map(str, frame[c].dropna().unique())) for c in frame.columns]
        return self

    def transform(self, x: Any) -> np.ndarray:
        frame = pd.DataFrame(x)
        out = np.empty(frame.shape, dtype=np.int32)
        for j, (column, categories) in enumerate(zip(frame.columns, self.categories_, strict=True)):
            values = frame[column]
            present = values.notna().to_numpy()
            codes = pd.Index(categories).get_indexer(values.astype(str))  # -1: not among them
            out[:, j] = np.where(present, np.where(codes < 0, UNSEEN, codes), MISSING)
        return out

    def get_feature_names_out(self, names: Any = None) -> np.ndarray:
        return np.asarray(names, dtype=object)


class Float32(BaseEstimator, TransformerMixin):
    """The part's output as float32, so the stacked matrix is float32 without a second copy;
    `negative_missing`: category codes below zero (missing, unseen) become NaN, which is how
    LightGBM reads a missing category."""

    def __init__(self, negative_missing: bool = False) -> None:
        self.negative_missing = negative_missing

    def fit(self, x: Any, y: Any = None) -> Float32:
        return self

    def __sklearn_is_fitted__(self) -> bool:  # stateless: nothing to fit
        return True

    def transform(self, x: Any) -> np.ndarray:
        out = np.asarray(x, dtype=np.float32)
        return np.where(out < 0, np.float32(np.nan), out) if self.negative_missing else out

    def get_feature_names_out(self, names: Any = None) -> np.ndarray:
        return np.asarray(names, dtype=object)


def make_transformer(roles: Roles, params: TabularFeatureParams, encoding: str, task: str) -> ColumnTransformer:
    """The unfitted transformer of `roles` for one encoding (`onehot` for linear and torch
    members, `native` for tree members, which split on raw values and category codes)."""
    target_type = {"regression": "continuous", "binary": "binary", "multiclass": "multiclass"}[task]
    folds = KFold(5, shuffle=True, random_state=0) if task == "regression" else \
        StratifiedKFold(5, shuffle=True, random_state=0)  # the encoder's cross-fitting
    encoded = [roles.target_encoded] if roles.target_encoded else []
    if encoding == "native":
        codes = make_pipeline(TextCodes(), Float32(negative_missing=True))
        parts = [("numeric", Float32(), roles.numeric), ("codes", codes, roles.onehot),
                 *[("target_encoded", make_pipeline(TextCodes(), TargetEncoder(target_type=target_type, cv=folds),
                                                    Float32()), c) for c in encoded]]
    else:
        numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                                SignedLog(params.skew_threshold, params.log_skewed), StandardScaler())
        onehot = make_pipeline(TextCodes(), OneHotEncoder(handle_unknown="infrequent_if_exist",
                                                          min_frequency=params.min_frequency, sparse_output=False,
                                                          dtype=np.float32))
        parts = [("numeric", numeric, roles.numeric), ("onehot", onehot, roles.onehot),
                 *[("target_encoded", make_pipeline(TextCodes(), TargetEncoder(target_type=target_type, cv=folds),
                                                    StandardScaler(), Float32()), c) for c in encoded]]
    return ColumnTransformer([p for p in parts if p[2]], remainder="drop", sparse_threshold=0.0,
                             verbose_feature_names_out=False)


def categorical_mask(transformer: ColumnTransformer) -> np.ndarray:
    """Which output columns of a fitted native transformer are category codes (LightGBM's
    `categorical_feature`)."""
    return np.array([name.startswith("codes__") for name in _names(transformer)], dtype=bool)


def _names(transformer: ColumnTransformer) -> list[str]:
    """`part__i` for each output column, by the transformer part that made it."""
    names: list[str] = []
    for name, indices in transformer.output_indices_.items():
        names += [f"{name}__{i}" for i in range(indices.stop - indices.start)]
    return names


def fit_matrix(transformer: ColumnTransformer, frame: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    """Fit on the training rows (the target encoder cross-fits) and return their float32 matrix."""
    return np.ascontiguousarray(transformer.fit_transform(frame, y), dtype=np.float32)


def matrix(transformer: ColumnTransformer, frame: pd.DataFrame) -> np.ndarray:
    return np.ascontiguousarray(transformer.transform(frame), dtype=np.float32)
