"""The final fit on every training row, and prediction with what it saved."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
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
from pipeline.house_prices.models import StackedRegressor, model_spec
from pipeline.house_prices.params import FeatureParams, ModelParams, TrainParams
from pipeline.house_prices.schemas import ID, TARGET
from pipeline.house_prices.training import (
    EpochCallback,
    History,
    chain_epochs,
    check_converged,
    epoch_progress,
    fit_stacked,
    log_rmse,
    predict_outputs,
    to_prices,
)


@dataclass
class FinalModel:
    transformer: Pipeline
    model: StackedRegressor | Regressor  # torch (linear, mlp), or scikit-learn / LightGBM
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
        fitted, history = fit_stacked(x, prices, mask, spec, params,
                                      torch.Generator().manual_seed(seed), None, chain_epochs(show, on_epoch),
                                      device=device)
    check_converged(history, f"the final fit of {model.kind}", params)
    return FinalModel(transformer, fitted, history, params.target, list(matrix.columns),
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
    """`Id,SalePrice` for raw rows, through the persisted transformer and price cap unchanged.

    A torch member computes in float64 (on a copy of the float32 network): float32 sums round
    differently with the batch size and the thread count, so a house priced alone, in a served
    request or in the whole test file would differ in the last digits; in float64 they agree.
    """
    x = transform(final.transformer, raw).to_numpy()
    if isinstance(final.model, StackedRegressor):
        model = copy.deepcopy(final.model).double()
        outputs = predict_outputs(model, torch.tensor(x, dtype=torch.float64).unsqueeze(0))[0].numpy()
    else:
        outputs = final.model.predict(x)
    prices = apply_price_cap(to_prices(outputs, final.target), raw, final.price_cap)
    return pd.DataFrame({ID: raw[ID].to_numpy(dtype=np.int64), TARGET: prices})


def predict_blend(models: list[FinalModel], raw: pd.DataFrame) -> pd.DataFrame:
    """`Id,SalePrice`: the models' log prices averaged with their blend weights (`weight`,
    learned by the `cv` stage and saved with each member; one model: its own prediction)."""
    frames = [predict_frame(m, raw) for m in models]
    prices = np.exp(np.average([np.log(f[TARGET].to_numpy()) for f in frames], axis=0,
                               weights=[m.weight for m in models]))
    return frames[0].assign(**{TARGET: prices})
