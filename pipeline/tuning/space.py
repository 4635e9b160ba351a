"""The `tune.space` section: which dotted params Optuna may vary, and over what.

Every key is a DVC-style dotted key (`train.lr`) that must already exist in params.yaml, so
the space works for whatever params the experiment has today, not a fixed list. The space is
checked up front (each bound and each choice is applied and parsed as a whole experiment),
so a typo fails before the first trial instead of turning every trial into a failure.

Optuna's categorical choices must be `None`, bool, int, float or str. A choice that is a list
(hidden layer sizes, `[128, 64]`) is handed to Optuna as the string `"128,64"` and decoded
back to the list by position, so studies stay storable and the params file gets real lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from pipeline.common.params import MEMBER_KEY, ParamsError, dotted_slot, with_overrides
from pipeline.house_prices.experiment import SECTIONS, parse_experiment

Primitive = None | bool | int | float | str


@dataclass(frozen=True)
class FloatRange:
    key: str
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial: optuna.Trial) -> float:
        return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)

    def examples(self) -> list[Any]:
        return [self.low, self.high]

    def decode(self, value: Any) -> Any:
        return value


@dataclass(frozen=True)
class IntRange:
    key: str
    low: int
    high: int
    log: bool = False
    step: int = 1

    def suggest(self, trial: optuna.Trial) -> int:
        return trial.suggest_int(self.key, self.low, self.high, log=self.log, step=self.step)

    def examples(self) -> list[Any]:
        return [self.low, self.high]

    def decode(self, value: Any) -> Any:
        return value


@dataclass(frozen=True)
class Choice:
    key: str
    choices: tuple[Any, ...]

    @property
    def encoded(self) -> tuple[Primitive, ...]:
        """What Optuna stores: the choices, with lists as comma-joined strings."""
        return tuple(encode_choice(c) for c in self.choices)

    def suggest(self, trial: optuna.Trial) -> Any:
        return self.decode(trial.suggest_categorical(self.key, self.encoded))

    def examples(self) -> list[Any]:
        return list(self.choices)

    def decode(self, value: Any) -> Any:
        """The params value of a stored Optuna choice (a list for an encoded list)."""
        pairs = list(zip(self.encoded, self.choices, strict=True))
        # Exact type first: `True == 1` must not decode a stored 1 as the choice `true`.
        matches = [c for e, c in pairs if type(e) is type(value) and e == value] or \
                  [c for e, c in pairs if e == value]
        if matches:
            return list(matches[0]) if isinstance(matches[0], tuple) else matches[0]
        raise ParamsError(f"tune.space.{self.key}: {value!r} is not one of its choices")


Dimension = FloatRange | IntRange | Choice


# The Optuna param naming the group a trial varies (`one_group_per_trial`); not a params key.
GROUP = "tune.group"
# Top-level keys every torch member reads unless it overrides them.
_TORCH_MODEL_KEYS = ("model.hidden", "model.dropout", "model.linear_skip")


def group_of(key: str) -> str:
    """The group a dotted key belongs to: `member2` for `model.members[2].*` (one member's own
    params), `torch` for `train.*` and the MLP shape (every torch member reads them), `blend`
    for `model.blend`, else its section (`features`, `sklearn`, `lightgbm`, `catboost`)."""
    if member := MEMBER_KEY.match(key):
        return f"member{member.group(1)}"
    if key.startswith("train.") or key in _TORCH_MODEL_KEYS:
        return "torch"
    if key == "model.blend":
        return "blend"
    return key.split(".")[0]


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]
    # Each trial varies the dimensions of one group only (`group_of`), chosen by the sampler;
    # the rest stay at params.yaml's values, so the OOF library reads the members it leaves alone.
    one_group_per_trial: bool = False

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(group_of(d.key) for d in self.dimensions))

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Ask the trial for every dimension (or every one of the group it draws first); return
        params overrides (dotted key -> value)."""
        dimensions = self.dimensions
        if self.one_group_per_trial and len(self.groups) > 1:
            group = trial.suggest_categorical(GROUP, self.groups)
            dimensions = tuple(d for d in dimensions if group_of(d.key) == group)
        return {d.key: d.suggest(trial) for d in dimensions}

    def decode(self, optuna_params: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's stored params as params overrides (keys outside this space pass unchanged;
        the group a trial drew is no params key and is left out)."""
        by_key = {d.key: d for d in self.dimensions}
        return {k: by_key[k].decode(v) if k in by_key else v for k, v in optuna_params.items() if k != GROUP}


def encode_choice(choice: Any) -> Primitive:
    if isinstance(choice, (list, tuple)):
        if not all(isinstance(c, (bool, int, float, str)) for c in choice):
            raise ValueError(f"a list choice may only hold scalars, got {choice!r}")
        return ",".join(str(c) for c in choice)
    if choice is None or isinstance(choice, (bool, int, float, str)):
        return choice
    raise ValueError(f"a choice must be a scalar or a list of scalars, got {choice!r}")


_FIELDS: dict[str, tuple[set[str], set[str]]] = {  # type -> (required, optional) fields
    "float": ({"type", "low", "high"}, {"log", "step"}),
    "int": ({"type", "low", "high"}, {"log", "step"}),
    "categorical": ({"type", "choices"}, set()),
}


def parse_space(raw_space: Any, raw_params: Mapping[str, Any], one_group_per_trial: bool = False,
                parse: Callable[[dict[str, Any]], Any] = parse_experiment) -> SearchSpace:
    """`tune.space` checked against the params it varies (each bound parsed as a whole
    experiment by `parse`: House Prices', or a competition project's); every error names the
    key at fault."""
    if not isinstance(raw_space, Mapping) or not raw_space:
        raise ParamsError("tune.space must be a non-empty mapping of dotted params keys")
    dimensions = []
    for key, spec in raw_space.items():
        where = f"tune.space.{key}"
        _check_key(key, raw_params, where)
        dimension = _parse_dimension(str(key), spec, where)
        for value in dimension.examples():
            try:
                parse(with_overrides(dict(raw_params), {key: value}))
            except ParamsError as exc:
                raise ParamsError(f"{where}: the value {value!r} is not valid for {key}: {exc}") from exc
        dimensions.append(dimension)
    return SearchSpace(tuple(dimensions), one_group_per_trial)


def _check_key(key: Any, raw_params: Mapping[str, Any], where: str) -> None:
    if not isinstance(key, str) or "." not in key:
        raise ParamsError(f"{where}: keys are dotted params keys such as train.lr")
    try:
        node, last = dotted_slot(dict(raw_params), key, where)
        if member := MEMBER_KEY.match(key):  # the member may not set it yet: its top-level param does
            node, last = dotted_slot(dict(raw_params), member.group(2), where)
    except ParamsError as exc:
        raise ParamsError(f"{where}: '{key}' is not a key of params.yaml ({exc})") from exc
    if isinstance(node[last], Mapping):
        raise ParamsError(f"{where}: '{key}' is a section, not a single param")
    if key.split(".")[0] not in SECTIONS:
        raise ParamsError(f"{where}: '{key}' does not change the CV score; tune keys of "
                          f"{', '.join(SECTIONS)}")


def _parse_dimension(key: str, spec: Any, where: str) -> Dimension:
    if not isinstance(spec, Mapping):
        raise ParamsError(f"{where} must be a mapping such as {{type: float, low: 0.001, high: 0.1}}")
    kind = spec.get("type")
    if kind not in _FIELDS:
        raise ParamsError(f"{where}.type={kind!r}: choose one of {', '.join(_FIELDS)}")
    required, optional = _FIELDS[kind]
    unknown, missing = sorted(set(spec) - required - optional), sorted(required - set(spec))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {', '.join(unknown)} for type {kind}")
    if missing:
        raise ParamsError(f"{where}: missing key(s) {', '.join(missing)} for type {kind}")
    if kind == "categorical":
        return _parse_choice(key, spec["choices"], where)
    number = float if kind == "float" else int
    low, high = (_number(spec[n], number, f"{where}.{n}") for n in ("low", "high"))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ParamsError(f"{where}.log={log!r}: expected true or false")
    step = spec.get("step")
    if step is not None:
        step = _number(step, number, f"{where}.step")
        if step <= 0 or log:
            raise ParamsError(f"{where}.step={step!r}: must be positive, and cannot be combined with log")
    if not low <= high:
        raise ParamsError(f"{where}: low={low} must not exceed high={high}")
    if log and low <= 0:
        raise ParamsError(f"{where}: a log range needs low > 0, got {low}")
    if kind == "float":
        return FloatRange(key, low, high, log, step)
    return IntRange(key, low, high, log, step or 1)


def _parse_choice(key: str, choices: Any, where: str) -> Choice:
    if not isinstance(choices, list) or not choices:
        raise ParamsError(f"{where}.choices must be a non-empty list")
    try:
        encoded = [encode_choice(c) for c in choices]
    except ValueError as exc:
        raise ParamsError(f"{where}.choices: {exc}") from exc
    if len(set(map(repr, encoded))) != len(encoded):
        raise ParamsError(f"{where}.choices: duplicate choices {choices!r}")
    return Choice(key, tuple(tuple(c) if isinstance(c, list) else c for c in choices))


def _number(value: Any, kind: type, where: str) -> Any:
    ok = isinstance(value, (int, float)) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok or (kind is float and not math.isfinite(value)):
        raise ParamsError(f"{where}={value!r}: expected {'a number' if kind is float else 'an integer'}")
    return kind(value)

