"""Which members an experiment blends: `model.members` for `model.kind: ensemble`, else the model itself.

The only place that tells a blend of several members from a single model: everything after
parsing (CV, the final fit, saving, serving, tuning) handles a single model as an ensemble of
one member, whose blend is the member itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from pipeline.common.params import ParamsError, with_overrides

ENSEMBLE = "ensemble"  # model.kind of a blend of `model.members`

P = TypeVar("P")


def ensemble_members(raw: dict[str, Any], params: P, parse: Callable[[dict[str, Any]], P],
                     check: Callable[[dict[str, Any], P], P]) -> tuple[P, ...]:
    """The members of `params` (parsed from `raw`): each `model.members` entry applied as dotted
    overrides to `raw` and parsed with `parse`, or `params` itself for a single model; every
    member passes `check` (its family exists and can read its features)."""
    if params.model.kind != ENSEMBLE:  # type: ignore[attr-defined]
        return (check(raw, params),)
    if not params.model.members:  # type: ignore[attr-defined]
        raise ParamsError("model.kind is ensemble but model.members is empty")
    members = []
    for i, overrides in enumerate(params.model.members):  # type: ignore[attr-defined]
        if any(key.startswith("cv.") for key in overrides):
            raise ParamsError(f"model.members[{i}]: members share the ensemble's folds; remove cv.* keys")
        member_raw = with_overrides(raw, {"model.members": [], **overrides})
        if member_raw["model"]["kind"] == ENSEMBLE:
            raise ParamsError(f"model.members[{i}]: set model.kind to a model family, not {ENSEMBLE}")
        try:
            member = parse(member_raw)
            members.append(check(member_raw, dataclasses.replace(member, members=())))
        except ParamsError as exc:
            raise ParamsError(f"model.members[{i}]: {exc}") from exc
    return tuple(members)
