"""The training loop: Adam with weight decay on minibatches of in-memory tensors.

No DataLoader and no per-sample Python: each epoch draws one permutation per model and
slices it into batches, so a step is a gather, a `baddbmm` and an Adam update. All folds of a
CV run (or one final model) train together through `FoldBatchedRegressor`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.common.console import progress_bar
from pipeline.common.errors import PipelineError
from pipeline.common.runtime import resolve_device
from pipeline.house_prices.models import FoldBatchedRegressor, ModelSpec, parameter_groups
from pipeline.house_prices.params import TrainParams

log = logging.getLogger(__name__)


def log_rmse(pred: np.ndarray, y: np.ndarray) -> float:
    """Kaggle's score: `sqrt(mean((log(clamp(pred, 1)) - log(y))^2))` on prices."""
    pred = np.clip(np.asarray(pred, dtype=np.float64), 1.0, None)
    return float(np.sqrt(np.mean((np.log(pred) - np.log(np.asarray(y, dtype=np.float64))) ** 2)))


def to_target(prices: np.ndarray, target: str) -> np.ndarray:
    """What the network regresses on: log prices (default) or raw prices (the book)."""
    return np.log(prices) if target == "log" else np.asarray(prices, dtype=np.float64)


def to_prices(outputs: np.ndarray, target: str) -> np.ndarray:
    return np.exp(outputs) if target == "log" else np.asarray(outputs, dtype=np.float64)


@dataclass
class History:
    """Per-epoch log-RMSE on prices, shape `[epochs run, models]`; valid is NaN without valid
    rows. `best_epochs` (1-based, per model): the epoch whose weights were kept."""

    train: np.ndarray
    valid: np.ndarray
    best_epochs: np.ndarray | None = None


EpochCallback = Callable[[int, np.ndarray, np.ndarray], None]


class Diverged(PipelineError, ArithmeticError):
    """Training produced a NaN, infinite or absurd score: nothing trained this way is worth keeping."""


# Predicting the mean price already scores far below this; a log-RMSE past it means prices off
# by a factor of e^5 (about 150) on average, which no training run that works ends with.
MAX_SANE_LOG_RMSE = 5.0


def check_converged(history: History, what: str, params: TrainParams) -> None:
    """Raise `Diverged` when a train (or, where there is one, valid) log-RMSE is not finite
    (naming the first such epoch), or the last epoch's is absurd; say what to change."""
    bad = ~np.isfinite(history.train)
    if not np.isnan(history.valid).all():
        bad |= ~np.isfinite(history.valid)
    epochs = np.flatnonzero(bad.any(axis=1))
    advice = f"lower train.lr (now {params.lr:g}). Nothing was written."
    if epochs.size:
        raise Diverged(f"{what} diverged at epoch {epochs[0] + 1} of {len(history.train)}: the log-RMSE is no "
                       f"longer finite; {advice}")
    final = float(np.max(history.train[-1]))
    if final > MAX_SANE_LOG_RMSE:
        raise Diverged(f"{what} diverged: the train log-RMSE is {final:.4g} after epoch {len(history.train)} "
                       f"(a working run ends far below {MAX_SANE_LOG_RMSE:g}); {advice}")


def chain_epochs(*callbacks: EpochCallback | None) -> EpochCallback | None:
    """One callback calling each given one in order (None for none): a progress bar, a
    tuning pruner and a live MLflow logger all watch the same epochs."""
    given = [c for c in callbacks if c is not None]
    if len(given) < 2:
        return given[0] if given else None

    def each_epoch(epoch: int, train: np.ndarray, valid: np.ndarray) -> None:
        for callback in given:
            callback(epoch, train, valid)

    return each_epoch


def epoch_progress(total: int, desc: str) -> tuple[Any, EpochCallback]:
    """A progress bar over epochs and the callback that advances it with the mean scores."""
    bar = progress_bar(total=total, desc=desc, unit="epoch", leave=False)

    def on_epoch(epoch: int, train: np.ndarray, valid: np.ndarray) -> None:
        bar.update(1)
        scores = {"train": f"{np.mean(train):.4f}"}
        if not np.isnan(valid).all():
            scores["valid"] = f"{np.nanmean(valid):.4f}"
        bar.set_postfix(scores)

    return bar, on_epoch


def fit_batched(
    x: torch.Tensor,
    prices: torch.Tensor,
    train_mask: torch.Tensor,
    spec: ModelSpec,
    params: TrainParams,
    generator: torch.Generator,
    valid_mask: torch.Tensor | None = None,
    on_epoch: EpochCallback | None = None,
    *,
    device: str = "auto",
) -> tuple[FoldBatchedRegressor, History]:
    """Train `spec.n_models` regressors at once.

    x: `[M, N, d]` features of all N rows as each model's transformer sees them.
    prices: `[N]` sale prices. train_mask / valid_mask: `[M, N]` booleans, the rows each model
    trains on / is scored on. `device`: a `runtime.device` choice. Returns the trained model
    (on CPU) and its history.
    """
    device = resolve_device(device)
    # Dropout draws from torch's global RNG; fork it and seed it from `generator`, so the
    # result depends on the generator alone, not on whatever ran before.
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        return _fit(x, prices, train_mask, spec, params, generator, device, valid_mask, on_epoch)


def _fit(x: torch.Tensor, prices: torch.Tensor, train_mask: torch.Tensor, spec: ModelSpec,
         params: TrainParams, generator: torch.Generator, device: torch.device,
         valid_mask: torch.Tensor | None, on_epoch: EpochCallback | None) -> tuple[FoldBatchedRegressor, History]:
    n_models = spec.n_models
    model = FoldBatchedRegressor(spec, generator)
    targets = torch.as_tensor(to_target(prices.numpy(), params.target), dtype=torch.float32)
    model.set_output_bias(torch.stack([targets[m].mean() for m in train_mask]))
    model.to(device)
    x, targets = x.to(device), targets.to(device)
    # Not `fused=True`: its first call pays a one-time set-up on CPU that costs more than it
    # saves over a whole CV run of a few hundred steps.
    optimizer = torch.optim.Adam(parameter_groups(model, params.weight_decay), lr=params.lr)
    # Cosine decay to 0 lets the last epochs settle instead of jittering with batch noise.
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs)
                 if params.schedule == "cosine" else None)

    rows = [torch.nonzero(m).squeeze(1) for m in train_mask]
    longest = max(len(r) for r in rows)
    # Pad each model's row list to the longest; padded slots carry weight 0 in the loss.
    pad = torch.tensor([[1.0] * len(r) + [0.0] * (longest - len(r)) for r in rows])
    padded = torch.stack([torch.cat([r, r.new_zeros(longest - len(r))]) for r in rows])
    # Row r of model m lives at m * N + r of the flattened features: `index_select` on that
    # view copies whole rows, much faster than advanced indexing with two index tensors.
    n_rows = x.shape[1]
    flat_x = x.reshape(n_models * n_rows, x.shape[2])
    offsets = (torch.arange(n_models) * n_rows).unsqueeze(1)

    train_curve = np.full((params.epochs, n_models), np.nan)
    valid_curve = np.full((params.epochs, n_models), np.nan)
    stopper = _EarlyStopping(model, params.patience) if params.patience > 0 and valid_mask is not None else None
    epochs_run = params.epochs
    for epoch in range(params.epochs):
        model.train()
        # One gather per epoch lays out every model's shuffled rows; batches are then views.
        order = torch.stack([_permute_real(len(r), longest, generator) for r in rows])
        epoch_rows = torch.gather(padded, 1, order)
        flat_rows = (epoch_rows + offsets).reshape(-1).to(device)
        xs = flat_x.index_select(0, flat_rows).view(n_models, longest, -1)
        ts = targets[epoch_rows.to(device)]
        ws = torch.gather(pad, 1, order).to(device)
        for start in range(0, longest, params.batch_size):
            batch = slice(start, start + params.batch_size)
            weight = ws[:, batch]
            err = _pointwise_loss(model(xs[:, batch]), ts[:, batch], params)
            loss = ((err * weight).sum(1) / weight.sum(1).clamp_min(1.0)).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        scores = score_rows(model, x, prices, params.target, train_mask, valid_mask)
        train_curve[epoch], valid_curve[epoch] = scores
        if not np.isfinite(train_curve[epoch]).all():
            log.warning("epoch %d: non-finite training loss; lower train.lr", epoch + 1)
        if on_epoch is not None:
            on_epoch(epoch, train_curve[epoch], valid_curve[epoch])
        if stopper is not None and stopper.update(epoch + 1, valid_curve[epoch]):
            epochs_run = epoch + 1
            break
    best = np.full(n_models, epochs_run)
    if stopper is not None:
        best = stopper.restore()
    return model.cpu(), History(train_curve[:epochs_run], valid_curve[:epochs_run], best)


class _EarlyStopping:
    """Per model: remember the weights of its best validation epoch; stop when no model has
    improved for `patience` epochs; `restore` puts every model back at its best epoch."""

    def __init__(self, model: FoldBatchedRegressor, patience: int) -> None:
        self.model, self.patience = model, patience
        n = model.spec.n_models
        self.best_score = np.full(n, np.inf)
        self.best_epoch = np.zeros(n, dtype=int)
        self.weights = [p.detach().clone() for p in model.parameters()]

    def update(self, epoch: int, valid: np.ndarray) -> bool:
        improved = np.nonzero(valid < self.best_score)[0]
        if len(improved):
            self.best_score[improved], self.best_epoch[improved] = valid[improved], epoch
            index = torch.as_tensor(improved, device=self.weights[0].device)
            with torch.no_grad():
                for kept, p in zip(self.weights, self.model.parameters(), strict=True):
                    kept[index] = p[index]
        return bool(((epoch - self.best_epoch) >= self.patience).all())

    def restore(self) -> np.ndarray:
        with torch.no_grad():
            for kept, p in zip(self.weights, self.model.parameters(), strict=True):
                p.copy_(kept)
        return np.maximum(self.best_epoch, 1)


def _pointwise_loss(pred: torch.Tensor, target: torch.Tensor, params: TrainParams) -> torch.Tensor:
    """Squared error, or Huber: quadratic near 0, linear beyond `huber_delta`.

    A few training houses (huge, partial sales) sit far off the price trend; under squared
    error they bend the fit for every other house, under Huber they pull linearly.
    """
    if params.loss == "huber":
        return torch.nn.functional.huber_loss(pred, target, reduction="none", delta=params.huber_delta)
    return (pred - target) ** 2


def _permute_real(n_real: int, longest: int, generator: torch.Generator) -> torch.Tensor:
    """A shuffled order of the real slots, padding slots last (so they fall in the last batch)."""
    return torch.cat([torch.randperm(n_real, generator=generator), torch.arange(n_real, longest)])


@torch.no_grad()
def predict_outputs(model: FoldBatchedRegressor, x: torch.Tensor) -> torch.Tensor:
    """Raw network outputs `[M, N]` in eval mode (dropout off), restoring the previous mode;
    in the model's dtype."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = model(x.to(device)).cpu()
    model.train(was_training)
    return out


@torch.no_grad()
def score_rows(model: FoldBatchedRegressor, x: torch.Tensor, prices: torch.Tensor, target: str,
               train_mask: torch.Tensor, valid_mask: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    """log-RMSE per model on its training rows and (if given) its validation rows.

    Computed on the model's device in one pass (no per-model Python); the same formula as
    `log_rmse`: `log(clamp(price, 1))`, which for log outputs is `max(output, 0)`.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = model(x.to(device)).double()
    model.train(was_training)
    log_pred = out.clamp_min(0.0) if target == "log" else torch.log(out.clamp_min(1.0))
    squared = (log_pred - torch.log(prices.to(device=device, dtype=torch.float64))) ** 2

    def per_model(mask: torch.Tensor | None) -> np.ndarray:
        if mask is None:
            return np.full(len(train_mask), math.nan)
        m = mask.to(device=device, dtype=torch.float64)
        return torch.sqrt((squared * m).sum(1) / m.sum(1)).cpu().numpy()

    return per_model(train_mask), per_model(valid_mask)
