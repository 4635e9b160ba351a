"""House Prices: CV score and the `cv` stage's speed against the book's training loop.

For `model.kind` linear and mlp (every other param from params.yaml), this runs, in one
process and on the same folds and the same per-fold features:
- ours: `pipeline.house_prices.cv.cross_validate` (what the `cv` stage computes), and
- the reference: the book's loop, one `nn.Sequential` per fold trained through
  `DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)` with the same optimizer,
  weight decay, schedule, epochs and per-epoch train/valid evaluation.
It prints both CV log-RMSEs and wall times and their ratio, plus the book's own recipe
(raw-price MSE, lr 5, no log features, train+test standardization) for context.

Run: .venv/bin/python benchmarks/house_prices.py [--data DIR] [--markdown docs/results/house-prices-speed.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import pandas as pd
import torch
from _data import add_data_argument, load_clean_frames
from _report import add_markdown_argument, results_page
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pipeline.common.params import BaseParams, StageParams
from pipeline.common.runtime import set_threads
from pipeline.house_prices.cv import cross_validate, split_folds
from pipeline.house_prices.features import fit_transformer, training_rows, transform
from pipeline.house_prices.params import CVParams, FeatureParams, ModelParams, TrainParams
from pipeline.house_prices.training import log_rmse, to_prices, to_target

ROOT = Path(__file__).resolve().parents[1]
PAGE = "docs/results/house-prices-speed.md"


class _WideDeep(nn.Module):
    """The same model as ours: an MLP, plus a linear path from the inputs when `skip`."""

    def __init__(self, deep: nn.Sequential, width: int, skip: bool) -> None:
        super().__init__()
        self.deep = deep
        self.skip = nn.Linear(width, 1, bias=False) if skip else None
        if self.skip is not None:
            nn.init.zeros_(self.skip.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deep(x) + (self.skip(x) if self.skip is not None else 0)


def book_loop(train: pd.DataFrame, test: pd.DataFrame, features: FeatureParams, model: ModelParams,
              params: TrainParams, splits: list[tuple[np.ndarray, np.ndarray]], seed: int) -> np.ndarray:
    """The D2L chapter-5 k-fold loop, with our model, features, training rows and optimizer settings."""
    torch.manual_seed(seed)
    y_all = train["SalePrice"].to_numpy(dtype=np.float64)
    scores = []
    for fold_idx, valid_idx in splits:
        train_idx = training_rows(train, fold_idx, features)  # as `cross_validate` does
        transformer = fit_transformer(train.iloc[train_idx], test, features)
        x = torch.tensor(transform(transformer, train).to_numpy(), dtype=torch.float32)
        t = torch.tensor(to_target(y_all, params.target), dtype=torch.float32).reshape(-1, 1)
        layers: list[nn.Module] = []
        width = x.shape[1]
        for h in (model.hidden if model.kind == "mlp" else ()):
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(model.dropout)]
            width = h
        net = _WideDeep(nn.Sequential(*layers, nn.Linear(width, 1)), x.shape[1],
                        model.kind == "mlp" and model.linear_skip)
        with torch.no_grad():
            net.deep[-1].bias.fill_(float(t[train_idx].mean()))
        decay = [p for n, p in net.named_parameters() if n.endswith("weight")]
        spare = [p for n, p in net.named_parameters() if n.endswith("bias")]
        opt = torch.optim.Adam([{"params": decay, "weight_decay": params.weight_decay},
                                {"params": spare, "weight_decay": 0.0}], lr=params.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, params.epochs) if params.schedule == "cosine" else None
        loader = DataLoader(TensorDataset(x[train_idx], t[train_idx]), batch_size=64, shuffle=True)
        loss_fn = nn.HuberLoss(delta=params.huber_delta) if params.loss == "huber" else nn.MSELoss()
        for _ in range(params.epochs):
            net.train()
            for xb, yb in loader:
                opt.zero_grad()
                loss_fn(net(xb), yb).backward()
                opt.step()
            if sched is not None:
                sched.step()
            net.eval()
            with torch.no_grad():  # the book scores train and valid every epoch
                out = to_prices(net(x).squeeze(1).double().numpy(), params.target)
                log_rmse(out[train_idx], y_all[train_idx]), log_rmse(out[valid_idx], y_all[valid_idx])
        scores.append(log_rmse(out[valid_idx], y_all[valid_idx]))
    return np.array(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--kinds", nargs="+", default=["linear", "mlp"])
    add_markdown_argument(parser, PAGE)
    args = parser.parse_args()
    with results_page(__file__, "House Prices: the cv stage against the book's training loop", __doc__,
                      args.markdown):
        measure(args)


def measure(args: argparse.Namespace) -> None:
    params = StageParams(ROOT / "params.yaml")
    base = params.section("base", BaseParams)
    # The loops are compared, not the price cap (a post-processing `book_loop` lacks): off for both.
    features = dataclasses.replace(params.section("features", FeatureParams), price_cap=False)
    model = params.section("model", ModelParams)
    train_params = params.section("train", TrainParams)
    cv = params.section("cv", CVParams)
    folds = cv.folds
    threads = set_threads(params.runtime().threads)
    train, test = load_clean_frames(args.data)
    splits = split_folds(len(train), folds, base.seed, cv.shuffle)  # the `cv` stage's folds
    # Warm-up: torch's first optimizer pulls in seconds of lazy imports; pay them before timing.
    warm = dataclasses.replace(train_params, epochs=1)
    linear = dataclasses.replace(model, kind="linear")
    warm_splits = split_folds(100, 2, base.seed)
    cross_validate(train.head(100), test, features, linear, warm, warm_splits, base.seed)
    book_loop(train.head(100), test, features, linear, warm, warm_splits, base.seed)
    print(f"{folds}-fold CV on {len(train)} rows, {train_params.epochs} epochs, batch {train_params.batch_size} "
          f"(book loop: 64), torch threads={threads}; both include per-fold feature fitting")
    print(f"{'model':<8}{'ours log-RMSE':>16}{'ours s':>9}{'book-loop log-RMSE':>21}{'book-loop s':>13}"
          f"{'speed-up':>10}")
    for kind in args.kinds:
        m = dataclasses.replace(model, kind=kind)
        start = time.perf_counter()
        ours = cross_validate(train, test, features, m, train_params, splits, base.seed)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        ref = book_loop(train, test, features, m, train_params, splits, base.seed)
        ref_s = time.perf_counter() - start
        print(f"{kind:<8}{ours.mean:>9.4f} ± {ours.std:.3f}{ours_s:>8.1f}s{ref.mean():>14.4f} ± {ref.std():.3f}"
              f"{ref_s:>12.1f}s{ref_s / ours_s:>9.1f}x")
    book_features = dataclasses.replace(features, fit_on="train+test", log_skewed=False, ordinal="none", derived=False,
                                        drop_outliers=False, clip=False, neighborhood_cap=False, encoding="onehot")
    book_train = dataclasses.replace(train_params, target="raw", loss="mse", epochs=100, batch_size=64, lr=5.0,
                                     weight_decay=0.0, schedule="constant", patience=0)
    book = cross_validate(train, test, book_features, dataclasses.replace(model, kind="linear"), book_train,
                          splits, base.seed, device="cpu")
    print(f"book recipe (raw-price MSE, lr 5, no log features, train+test scaling): {book.mean:.4f} ± {book.std:.3f}")


if __name__ == "__main__":
    main()
