"""The final fit on every training row, and prediction with what it saved."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file
from sklearn.pipeline import Pipeline

from pipeline.house_prices.estimators import Regressor
from pipeline.house_prices.features import (
    apply_price_cap,
    fit_and_transform,
    fit_price_cap,
    native_categorical,
    training_rows,
    transform,
)
from pipeline.house_prices.models import FoldBatchedRegressor, model_spec
from pipeline.house_prices.params import FeatureParams, ModelParams, TrainParams
from pipeline.house_prices.schemas import ID, TARGET
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

WEIGHTS = "weights.safetensors"


class Predictor(Protocol):
    """A fitted member: outputs for feature rows (log prices, or raw ones for `train.target:
    raw`), and `save` writing it into a folder and returning its spec (`families.load_predictor`)."""

    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def save(self, directory: Path) -> dict[str, Any]: ...


class TorchPredictor:
    """A trained torch linear model or MLP (one model of a `FoldBatchedRegressor`).

    Predicts in float64 on a copy of the float32 network: float32 sums round differently with
    the batch size and the thread count, so a house priced alone, in a served request or in
    the whole test file would differ in the last digits; in float64 they agree.
    """

    def __init__(self, network: FoldBatchedRegressor) -> None:
        self.network = network
        self._double = copy.deepcopy(network).double().eval()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict_outputs(self._double, torch.tensor(x, dtype=torch.float64).unsqueeze(0))[0].numpy()

    def save(self, directory: Path) -> dict[str, Any]:
        save_file({k: v.contiguous() for k, v in self.network.state_dict().items()}, directory / WEIGHTS)
        return self.network.spec.to_dict()


@dataclass
class FinalModel:
    transformer: Pipeline
    model: Predictor  # any family's fitted model (families.FAMILIES)
    history: History
    target: str  # what `model` outputs: log or raw prices
    feature_names: list[str]
    weight: float = 1.0  # in the blend of the members it belongs to (`predict_blend`)
    price_cap: dict[str, float] | None = None  # Neighborhood -> highest price (`features.price_cap`)


def fit_final(train: pd.DataFrame, test: pd.DataFrame | None, features: FeatureParams,
              model: ModelParams, params: TrainParams, seed: int, *, device: str = "auto",
              on_epoch: EpochCallback | None = None) -> FinalModel:
    """One model on every training row (but dropped outliers), with the very params CV scored;
    `on_epoch` also sees every epoch (its valid scores are NaN: there are no valid rows)."""
    train = train.iloc[training_rows(train, np.arange(len(train)), features)]
    transformer, matrix = fit_and_transform(train, np.arange(len(train)), test, features)
    x = torch.tensor(matrix.to_numpy(), dtype=torch.float32).unsqueeze(0)
    prices = torch.tensor(train[TARGET].to_numpy(dtype=np.float64))
    mask = torch.ones(1, len(train), dtype=torch.bool)
    spec = model_spec(model, x.shape[2], 1)
    bar, show = epoch_progress(params.epochs, f"final fit {model.kind}")
    with bar:
        fitted, history = fit_batched(x, prices, mask, spec, params,
                                      torch.Generator().manual_seed(seed), None, chain_epochs(show, on_epoch),
                                      device=device)
    check_converged(history, f"the final fit of {model.kind}", params)
    return FinalModel(transformer, TorchPredictor(fitted), history, params.target, list(matrix.columns),
                      price_cap=fit_price_cap(train, np.arange(len(train)), features))


def fit_final_regressor(train: pd.DataFrame, test: pd.DataFrame | None, features: FeatureParams,
                        regressor: Regressor) -> FinalModel:
    """A scikit-learn or LightGBM member on every training row (but dropped outliers)."""
    train = train.iloc[training_rows(train, np.arange(len(train)), features)]
    transformer, matrix = fit_and_transform(train, np.arange(len(train)), test, features)
    x, prices = matrix.to_numpy(), train[TARGET].to_numpy(dtype=np.float64)
    regressor.fit(x, np.log(prices), native_categorical(transformer, features))
    score = log_rmse(np.exp(regressor.predict(x)), prices)
    history = History(np.array([[score]]), np.array([[np.nan]]), np.ones(1, dtype=int))
    return FinalModel(transformer, regressor, history, "log", list(matrix.columns),
                      price_cap=fit_price_cap(train, np.arange(len(train)), features))


def predict_frame(final: FinalModel, raw: pd.DataFrame) -> pd.DataFrame:
    """`Id,SalePrice` for raw rows, through the persisted transformer and price cap unchanged."""
    outputs = final.model.predict(transform(final.transformer, raw).to_numpy())
    prices = apply_price_cap(to_prices(outputs, final.target), raw, final.price_cap)
    return pd.DataFrame({ID: raw[ID].to_numpy(dtype=np.int64), TARGET: prices})


def predict_blend(models: list[FinalModel], raw: pd.DataFrame) -> pd.DataFrame:
    """`Id,SalePrice`: the models' log prices averaged with their blend weights (`weight`,
    learned by the `cv` stage and saved with each member; one model: its own prediction)."""
    frames = [predict_frame(m, raw) for m in models]
    prices = np.exp(np.average([np.log(f[TARGET].to_numpy()) for f in frames], axis=0,
                               weights=[m.weight for m in models]))
    return frames[0].assign(**{TARGET: prices})
