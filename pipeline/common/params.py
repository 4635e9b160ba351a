"""`params.yaml` as frozen dataclasses: the one home of hyperparameters, and the one loader.

Every stage reads its params through a `StageParams`, which records each section it parses.
`tests/test_dvc_contract.py` compares that record with the stage's `params:` in `dvc.yaml`, so
a stage cannot read a param that DVC would not rerun it for. The `runtime` section (threads,
device, row caps, picture sizes) is read apart and never recorded: it says how to run, not what
to compute, and no stage declares it.

A missing or unknown key, a wrong type or a value outside its range is an error that names the
key and what is allowed, so a typo in `dvc exp run -S train.lr=...` cannot be ignored. DVC writes
that value into params.yaml before any stage reads it, and leaves it there when the stage refuses
it: so an error about the file's own contents also says how to get the committed values back.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from pipeline.common.errors import PipelineError

T = TypeVar("T")

RUNTIME = "runtime"


class ParamsError(PipelineError, ValueError):
    """params.yaml does not match what the code expects."""


class InvalidParamsFile(ParamsError):
    """A value in the params file itself is wrong: the message names the file and the way back."""


def restore_hint(path: Path) -> str:
    """How to undo a bad value: `dvc exp run -S` leaves what it set in the file even when a stage refuses it."""
    return f"(if dvc exp run -S wrote it, git checkout {path.name} restores the committed values)"


@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed values of a numeric param (each item, for a list)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False

    def admits(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts) or "finite"


def ranged(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Any:
    """A dataclass field whose value `parse_section` checks against this range."""
    return dataclasses.field(metadata={"range": Range(low, high, low_open, high_open)})


def positive() -> Any:
    return ranged(0, low_open=True)


def at_least(low: float) -> Any:
    return ranged(low)


@dataclasses.dataclass(frozen=True)
class BaseParams:
    """`base`: what every pipeline shares and every result depends on."""

    seed: int = at_least(0)


@dataclasses.dataclass(frozen=True)
class RuntimeParams:
    """`runtime`: how to run, never what to compute; no stage declares it (see the module doc)."""

    device: Literal["auto", "cpu", "cuda"]
    threads: int = at_least(0)
    fashion_max_train_rows: int = at_least(0)
    fashion_max_test_rows: int = at_least(0)
    fashion_prediction_images: int = at_least(0)


class StageParams:
    """params.yaml as one stage reads it: parsed sections, and the names of those it read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = read_params(path)
        self.read: set[str] = set()

    def section(self, name: str, cls: type[T]) -> T:
        """Section `name`, checked against dataclass `cls`, and recorded as read."""
        self.read.add(name)
        return self._parse(name, cls)

    def key(self, section: str, name: str, cls: type) -> Any:
        """One key of a section (the whole section is still checked), recorded as `section.name`:
        a stage that needs one value does not rerun when its neighbours change."""
        value = getattr(self._parse(section, cls), name)
        self.read.add(f"{section}.{name}")
        return value

    def sections(self, names: Iterable[str]) -> dict[str, Any]:
        """Raw copies of several sections (e.g. for an experiment with overrides), recorded as read."""
        names = list(names)
        self.read.update(names)
        return {name: copy.deepcopy(self._raw_section(name)) for name in names}

    def parsed(self, raw: dict[str, Any], parse: Callable[[dict[str, Any]], T]) -> T:
        """`parse(raw)` of sections read from this file (`sections`), its errors worded like `section`'s."""
        with self._from_file():
            return parse(raw)

    def check(self, sections: Mapping[str, Any]) -> None:
        """Every section of the file that `sections` knows (name -> dataclass, or a type such as a
        list of choices), parsed in the file's order, nothing recorded as read: what a command
        checks before it does anything. In file order, the first error names the value at fault,
        not a later key that fails only because it depends on it (a `tune.space` bound is tried
        against the whole file). Sections it does not know, or that are missing, are left to the
        code that reads them."""
        with self._from_file():
            for name, raw in self.raw.items():
                if name in sections:
                    _convert(raw, sections[name], name)

    def runtime(self) -> RuntimeParams:
        """The runtime settings, not recorded as read: they say how to run, so no stage declares them and
        changing them reruns nothing. The thread count changes no result on the CPU, a GPU rounds
        differently; the Fashion-MNIST row caps do change results (the metrics record the rows used)."""
        return self._parse(RUNTIME, RuntimeParams)

    def _parse(self, name: str, cls: type[T]) -> T:
        """Section `name` checked against `cls`, an error about its values worded as the file's."""
        raw = self._raw_section(name)
        with self._from_file():
            return parse_section(raw, cls, name)

    def _raw_section(self, name: str) -> Any:
        if name not in self.raw:
            raise ParamsError(f"{self.path}: section '{name}' is missing")
        return self.raw[name]

    @contextlib.contextmanager
    def _from_file(self) -> Iterator[None]:
        """A params error raised inside, about this file's values, as one line: the file, the
        error, and how to restore the committed values."""
        try:
            yield
        except InvalidParamsFile:
            raise
        except ParamsError as exc:
            raise InvalidParamsFile(f"{self.path.name}: {exc} {restore_hint(self.path)}") from exc


# `model.members[2].train.lr`: the key `train.lr` of the third ensemble member's overrides.
MEMBER_KEY = re.compile(r"^model\.members\[(\d+)\]\.(.+)$")


def dotted_slot(data: dict, dotted: str, where: str) -> tuple[dict, str]:
    """The mapping that holds dotted key `dotted` (e.g. `train.lr`) and its last part.

    Every part must already exist: an override names a param, it never invents one. A member
    key (`model.members[2].train.lr`) is a slot in that member's overrides, which may not set
    the key yet but must name a param that exists.
    """
    member = MEMBER_KEY.match(dotted)
    if member:
        index, inner = int(member.group(1)), member.group(2)
        members = data.get("model", {}).get("members") if isinstance(data.get("model"), dict) else None
        if not isinstance(members, list) or index >= len(members) or not isinstance(members[index], dict):
            raise ParamsError(f"{where} '{dotted}': model.members has no member {index}")
        if MEMBER_KEY.match(inner) or inner.startswith("model.members"):
            raise ParamsError(f"{where} '{dotted}': a member cannot set its own members")
        dotted_slot(data, inner, where)  # the param must exist
        return members[index], inner
    *path, last = dotted.split(".")
    node = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"{where} '{dotted}': no section '{part}'")
        node = node[part]
    if not isinstance(node, dict) or last not in node:
        raise ParamsError(f"{where} '{dotted}': no key '{last}'")
    return node, last


def with_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `raw` with dotted keys set; an unknown key is an error, not a new key."""
    out = copy.deepcopy(raw)
    for key, value in overrides.items():
        node, last = dotted_slot(out, key, "override")
        node[last] = value
    return out


def read_params(path: Path) -> dict[str, Any]:
    """The whole params file as plain data."""
    if not path.exists():
        raise ParamsError(f"{path} not found: run from the project root")
    try:
        with path.open() as fh:
            data = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParamsError(f"{path} is not valid YAML{at}: {problem}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must hold a mapping of sections")
    return data


def parse_section(raw: Any, cls: type[T], where: str) -> T:
    """Build dataclass `cls` from a mapping, failing loudly on any mismatch."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{where} must be a mapping, got {raw!r}")
    hints = get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    unknown = sorted(set(raw) - set(names))
    missing = sorted(set(names) - set(raw))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(names)}")
    if missing:
        raise ParamsError(f"{where}: missing key(s) {', '.join(missing)}")
    values = {}
    for f in fields:
        key = f"{where}.{f.name}"
        values[f.name] = _convert(raw[f.name], hints[f.name], key)
        bounds = f.metadata.get("range")
        if bounds is not None:
            _check_range(values[f.name], bounds, key)
    instance = cls(**values)
    check = getattr(instance, "check", None)
    if callable(check):
        check()
    return instance


def _check_range(value: Any, bounds: Range, where: str) -> None:
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if not bounds.admits(float(item)):
            raise ParamsError(f"{where}={value!r}: must be {bounds.describe()}")


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return parse_section(value, hint, where)
    if origin is Literal:
        if value not in get_args(hint):
            raise ParamsError(f"{where}={value!r}: choose one of {', '.join(map(str, get_args(hint)))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}={value!r}: expected a list")
        item = get_args(hint)[0]
        return tuple(_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}={value!r}: expected a mapping")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}={value!r}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}={value!r}: expected an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ParamsError(f"{where}={value!r}: expected a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where}={value!r}: expected a string")
        return value
    return value
