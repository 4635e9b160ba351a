"""K-fold cross-validation over the shared feature module: folds, fold features, the CV score."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import KFold
from tqdm.auto import tqdm

from pipeline.common.params import ParamsError
from pipeline.house_prices.features import fit_and_transform, text_as_object, training_rows
from pipeline.house_prices.models import model_spec
from pipeline.house_prices.params import FeatureParams, ModelParams, TrainParams
from pipeline.house_prices.schemas import TARGET
from pipeline.house_prices.training import (
    EpochCallback,
    History,
    check_converged,
    epoch_progress,
    fit_stacked,
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
        self._entries: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def matrix(self, train: pd.DataFrame, fit_idx: np.ndarray, test: pd.DataFrame | None,
               features: FeatureParams) -> np.ndarray:
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


def fold_matrix(train: pd.DataFrame, fit_idx: np.ndarray, test: pd.DataFrame | None,
                features: FeatureParams) -> np.ndarray:
    """Features of every row of `train`, from a transformer fit on the rows `fit_idx`."""
    return fit_and_transform(train, fit_idx, test, features)[1].to_numpy()


def split_folds(n_rows: int, folds: int, seed: int, shuffle: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """k-fold (train_idx, valid_idx) pairs, shuffled with `seed` or (`shuffle=False`) the
    book's contiguous blocks; every row is validated exactly once."""
    if not 2 <= folds <= n_rows:
        raise ParamsError(f"cv.folds must be between 2 and the number of rows ({n_rows}), got {folds}")
    kfold = KFold(n_splits=folds, shuffle=True, random_state=seed) if shuffle else KFold(n_splits=folds)
    return list(kfold.split(np.arange(n_rows)))


@dataclass
class CVResult:
    fold_scores: np.ndarray  # [folds] validation log-RMSE
    history: History  # per-epoch curves, [epochs, folds]
    oof_prices: np.ndarray  # [N] out-of-fold predicted prices
    prices: np.ndarray  # [N] true prices

    @property
    def mean(self) -> float:
        return float(self.fold_scores.mean())

    @property
    def std(self) -> float:
        return float(self.fold_scores.std())

    @property
    def oof_score(self) -> float:
        """log-RMSE of all out-of-fold predictions pooled (close to, not equal to, the mean)."""
        return log_rmse(self.oof_prices, self.prices)


def _stack(matrices: list[np.ndarray]) -> torch.Tensor:
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
    `runtime.device` choice.
    """
    train, test = text_as_object(train), (None if test is None else text_as_object(test))
    folds = len(splits)
    splits = [(training_rows(train, t, features), v) for t, v in splits]
    matrices = []
    for train_idx, _ in tqdm(splits, desc="features per fold", leave=False):
        matrices.append(fold_matrix(train, train_idx, test, features) if cache is None
                        else cache.matrix(train, train_idx, test, features))
    x = _stack(matrices)
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

    def each_epoch(epoch: int, train_scores: np.ndarray, valid_scores: np.ndarray) -> None:
        show(epoch, train_scores, valid_scores)
        if on_epoch is not None:
            on_epoch(epoch, train_scores, valid_scores)

    with bar:
        fitted, history = fit_stacked(x, prices, train_mask, spec, params, generator, valid_mask, each_epoch,
                                      device=device)
    check_converged(history, f"cv of {model.kind}", params)
    outputs = predict_outputs(fitted, x).double().numpy()
    oof = np.empty(n)
    for f, (_, valid_idx) in enumerate(splits):
        oof[valid_idx] = to_prices(outputs[f, valid_idx], params.target)
    return score_oof(oof, prices.numpy(), splits, history)


def score_oof(oof: np.ndarray, prices: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
              history: History) -> CVResult:
    """Fold scores from out-of-fold predictions: the one definition of a CV score."""
    scores = np.array([log_rmse(oof[v], prices[v]) for _, v in splits])
    return CVResult(scores, history, oof, prices)
