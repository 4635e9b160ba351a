"""K-fold cross-validation over the shared feature module: folds, fold features, the CV score.

Folds may be repeated (`cv.repeats`): the splits are then the k folds of the first shuffle,
then the k of the second, and so on; every row is validated once per repeat, and the
out-of-fold predictions are kept per repeat (`CVResult.oof_repeats`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import KFold, RepeatedKFold

from pipeline.common.console import progress_bar
from pipeline.common.params import ParamsError
from pipeline.house_prices.estimators import Regressor
from pipeline.house_prices.features import (
    apply_price_cap,
    fit_and_transform,
    fit_price_cap,
    native_categorical,
    text_as_object,
    training_rows,
    transform,
)
from pipeline.house_prices.models import model_spec
from pipeline.house_prices.params import FeatureParams, ModelParams, TrainParams
from pipeline.house_prices.schemas import TARGET
from pipeline.house_prices.training import (
    EpochCallback,
    History,
    chain_epochs,
    check_converged,
    epoch_progress,
    fit_batched,
    log_rmse,
    predict_outputs,
    to_prices,
)

log = logging.getLogger(__name__)


class FoldFeatureCache:
    """Fold feature matrices kept between CV runs on the *same* training and test frames.

    A tuning study scores many trials on one dataset, and trials that share the feature
    options and folds would refit the identical per-fold transformers (a large share of a
    linear trial, most of a pruned one). Keys are the feature params and the fold's
    fit rows; the frames themselves are not part of the key, so one cache serves one pair
    of frames only. Least recently used entries go first beyond `max_entries`.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, FoldMatrix] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def matrix(self, train: pd.DataFrame, fit_idx: np.ndarray, test: pd.DataFrame | None,
               features: FeatureParams) -> FoldMatrix:
        key = (features, hashlib.sha1(np.ascontiguousarray(fit_idx, dtype=np.int64)).hexdigest())
        with self._lock:  # `kpipe tune --n-jobs` runs trials in threads
            found = self._entries.get(key)
            if found is not None:
                self.hits += 1
                self._entries.move_to_end(key)
                return found
            self.misses += 1
        matrix = fold_matrix(train, fit_idx, test, features)  # outside the lock: the slow part
        with self._lock:
            self._entries[key] = matrix
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return matrix


class FoldMatrix(NamedTuple):
    """One fold's features of every training row and of the test rows, and which columns hold
    native category codes."""

    values: np.ndarray  # [N, d]
    categorical: np.ndarray  # [d] bool
    test_values: np.ndarray  # [N_test, d]; [0, d] without a test frame


def fold_matrix(train: pd.DataFrame, fit_idx: np.ndarray, test: pd.DataFrame | None,
                features: FeatureParams) -> FoldMatrix:
    """Features of every row of `train` and of `test`, from a transformer fit on the rows `fit_idx`."""
    transformer, matrix = fit_and_transform(train, fit_idx, test, features)
    values = matrix.to_numpy()
    test_values = transform(transformer, test).to_numpy() if test is not None else np.empty((0, values.shape[1]))
    return FoldMatrix(values, native_categorical(transformer, features), test_values)


Splits = list[tuple[np.ndarray, np.ndarray]]


def split_folds(n_rows: int, folds: int, seed: int, shuffle: bool = True, repeats: int = 1) -> Splits:
    """k-fold (train_idx, valid_idx) pairs, shuffled with `seed` or (`shuffle=False`) the
    book's contiguous blocks; every row is validated exactly once per repeat.

    Repeats are scikit-learn's `RepeatedKFold` from `seed`, whose first repeat is exactly
    `KFold(shuffle=True, random_state=seed)`: one repeat is the plain shuffled k-fold.
    """
    if not 2 <= folds <= n_rows:
        raise ParamsError(f"cv.folds must be between 2 and the number of rows ({n_rows}), got {folds}")
    if repeats > 1 and not shuffle:
        raise ParamsError("repeated folds need shuffling: contiguous folds are the same every time")
    if repeats > 1:
        kfold = RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    else:
        kfold = KFold(n_splits=folds, shuffle=True, random_state=seed) if shuffle else KFold(n_splits=folds)
    return list(kfold.split(np.arange(n_rows)))


def fold_names(folds: int, repeats: int) -> list[str]:
    """`fold1`.. for one repeat; `repeat1_fold1`.. for several (the order of the splits)."""
    if repeats == 1:
        return [f"fold{k + 1}" for k in range(folds)]
    return [f"repeat{r + 1}_fold{k + 1}" for r in range(repeats) for k in range(folds)]


def repeat_of(splits: Splits, n_rows: int) -> np.ndarray:
    """The repeat each split belongs to: splits come repeat by repeat, each covering all rows."""
    repeats = sum(len(v) for _, v in splits) // n_rows
    if repeats < 1 or len(splits) % repeats:
        raise ValueError(f"{len(splits)} splits over {n_rows} rows are not whole repeats of k-fold")
    return np.arange(len(splits)) // (len(splits) // repeats)


@dataclass
class CVResult:
    fold_scores: np.ndarray  # [repeats * folds] validation log-RMSE
    history: History  # per-epoch curves, [epochs, repeats * folds]
    oof_repeats: np.ndarray  # [repeats, N] out-of-fold predicted prices, one row per repeat
    prices: np.ndarray  # [N] true prices
    # [N_test] test prices: the geometric mean of every fold model's prediction ([0] without test rows)
    test_prices: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))

    @property
    def mean(self) -> float:
        """Mean over all folds of all repeats."""
        return float(self.fold_scores.mean())

    @property
    def std(self) -> float:
        return float(self.fold_scores.std())

    @property
    def repeats(self) -> int:
        return self.oof_repeats.shape[0]

    @property
    def oof_prices(self) -> np.ndarray:
        """`[N]` out-of-fold predictions, averaged in log space over the repeats (each repeat's
        prediction of a row comes from models that never saw it; prices clamped at 1, as the
        score does). One repeat: its predictions unchanged."""
        if self.repeats == 1:
            return self.oof_repeats[0]
        return np.exp(np.log(np.clip(self.oof_repeats, 1.0, None)).mean(axis=0))

    @property
    def oof_score(self) -> float:
        """log-RMSE of all out-of-fold predictions of all repeats pooled (close to, not equal
        to, the mean)."""
        return log_rmse(self.oof_repeats.ravel(), np.tile(self.prices, self.repeats))


def _batch(matrices: list[np.ndarray]) -> torch.Tensor:
    """`[M, N, d_max]`: each model's features, zero-padded to a common width.

    Folds can see different categories, hence different widths; a zero column adds nothing
    to a prediction, so padding leaves each model's function unchanged.
    """
    width = max(m.shape[1] for m in matrices)
    out = torch.zeros(len(matrices), matrices[0].shape[0], width)
    for i, m in enumerate(matrices):
        out[i, :, : m.shape[1]] = torch.tensor(m, dtype=torch.float32)
    return out


def cross_validate(train: pd.DataFrame, test: pd.DataFrame | None, features: FeatureParams,
                   model: ModelParams, params: TrainParams, splits: list[tuple[np.ndarray, np.ndarray]],
                   seed: int, *, on_epoch: EpochCallback | None = None,
                   cache: FoldFeatureCache | None = None, device: str = "auto") -> CVResult:
    """Train one model per fold (all folds at once) and score each on its held-out rows.

    Each fold's transformer is fit on that fold's training rows only (plus the unlabeled
    test rows when `features.fit_on` is `train+test`); validation rows are only transformed.
    `on_epoch(epoch, train_scores, valid_scores)` sees every epoch's per-fold scores (e.g.
    to prune a tuning trial by raising). `splits` come from `split_folds` (the caller's
    `cv` params), so ensemble members share one fold assignment while their seeds differ.
    `cache` reuses fold matrices across runs on the same frames (tuning). `device` is a
    `runtime.device` choice. With `features.price_cap`, each fold's predictions are capped at
    its fit rows' neighbourhood prices: the fold scores include the cap, the per-epoch curves
    (the network's own outputs) do not.
    """
    train, test = text_as_object(train), (None if test is None else text_as_object(test))
    folds = len(splits)
    splits = [(training_rows(train, t, features), v) for t, v in splits]
    fold_matrices = _fold_matrices(train, test, features, splits, cache)
    x = _batch([m.values for m in fold_matrices])
    n = len(train)
    train_mask = torch.zeros(folds, n, dtype=torch.bool)
    valid_mask = torch.zeros(folds, n, dtype=torch.bool)
    for f, (train_idx, valid_idx) in enumerate(splits):
        train_mask[f, train_idx] = True
        valid_mask[f, valid_idx] = True
    prices = torch.tensor(train[TARGET].to_numpy(dtype=np.float64))
    spec = model_spec(model, x.shape[2], folds)
    generator = torch.Generator().manual_seed(seed)
    bar, show = epoch_progress(params.epochs, f"cv {model.kind} x{folds} folds")
    with bar:
        fitted, history = fit_batched(x, prices, train_mask, spec, params, generator, valid_mask,
                                      chain_epochs(show, on_epoch), device=device)
    check_converged(history, f"cv of {model.kind}", params)
    outputs = predict_outputs(fitted, x).double().numpy()
    test_outputs = (predict_outputs(fitted, _batch([m.test_values for m in fold_matrices])).double().numpy()
                    if test is not None else None)
    repeat = repeat_of(splits, n)
    oof = np.empty((repeat[-1] + 1, n))
    test_prices = []
    for f, (fit_idx, valid_idx) in enumerate(splits):
        cap = fit_price_cap(train, fit_idx, features)
        oof[repeat[f], valid_idx] = apply_price_cap(to_prices(outputs[f, valid_idx], params.target),
                                                    train.iloc[valid_idx], cap)
        if test_outputs is not None:
            test_prices.append(apply_price_cap(to_prices(test_outputs[f], params.target), test, cap))
    return score_oof(oof, prices.numpy(), splits, history, test_prices)


def _fold_matrices(train: pd.DataFrame, test: pd.DataFrame | None, features: FeatureParams, splits: Splits,
                   cache: FoldFeatureCache | None) -> list[FoldMatrix]:
    return [fold_matrix(train, fit_idx, test, features) if cache is None
            else cache.matrix(train, fit_idx, test, features)
            for fit_idx, _ in progress_bar(splits, desc="features per fold", leave=False)]


def cross_validate_regressor(train: pd.DataFrame, test: pd.DataFrame | None, features: FeatureParams,
                             make: Callable[[], Regressor], splits: Splits, *,
                             cache: FoldFeatureCache | None = None) -> CVResult:
    """`cross_validate` for a scikit-learn or LightGBM member: `make()` gives a fresh regressor
    of log price, fit on each fold's training rows (outliers dropped as for every member) and
    scored on its held-out rows. Its history is one "epoch": the final train and valid scores."""
    train, test = text_as_object(train), (None if test is None else text_as_object(test))
    splits = [(training_rows(train, t, features), v) for t, v in splits]
    prices = train[TARGET].to_numpy(dtype=np.float64)
    repeat = repeat_of(splits, len(train))
    oof = np.empty((repeat[-1] + 1, len(train)))
    train_scores = np.empty(len(splits))
    test_prices = []
    matrices = _fold_matrices(train, test, features, splits, cache)
    for f, ((fit_idx, valid_idx), matrix) in enumerate(progress_bar(list(zip(splits, matrices, strict=True)),
                                                            desc="regressor per fold", leave=False)):
        regressor = make().fit(matrix.values[fit_idx], np.log(prices[fit_idx]), matrix.categorical)
        cap = fit_price_cap(train, fit_idx, features)
        oof[repeat[f], valid_idx] = apply_price_cap(np.exp(regressor.predict(matrix.values[valid_idx])),
                                                    train.iloc[valid_idx], cap)
        train_scores[f] = log_rmse(np.exp(regressor.predict(matrix.values[fit_idx])), prices[fit_idx])
        if test is not None:
            test_prices.append(apply_price_cap(np.exp(regressor.predict(matrix.test_values)), test, cap))
    history = History(train_scores[None, :], np.full((1, len(splits)), np.nan), np.ones(len(splits), dtype=int))
    result = score_oof(oof, prices, splits, history, test_prices)
    result.history.valid[0] = result.fold_scores
    return result


def score_oof(oof: np.ndarray, prices: np.ndarray, splits: Splits, history: History,
              test_prices: list[np.ndarray] | np.ndarray | None = None) -> CVResult:
    """Fold scores from out-of-fold predictions (`[repeats, N]`, or `[N]` for one repeat): the
    one definition of a CV score. `test_prices`: each fold model's test prices (combined by
    their geometric mean), or the combined `[N_test]` already."""
    oof = np.atleast_2d(oof)
    repeat = repeat_of(splits, len(prices))
    scores = np.array([log_rmse(oof[repeat[f], v], prices[v]) for f, (_, v) in enumerate(splits)])
    if test_prices is None or len(test_prices) == 0:
        combined = np.empty(0)
    elif isinstance(test_prices, np.ndarray) and test_prices.ndim == 1:
        combined = test_prices
    else:
        combined = np.exp(np.log(np.clip(np.stack(test_prices), 1.0, None)).mean(axis=0))
    return CVResult(scores, history, oof, prices, combined)
