"""Write a params file with some dotted keys changed, keeping the original's comments and layout.

params.yaml is documentation as much as data (every option's choices are in its comments), so
`kpipe tune --apply` edits it in ruamel.yaml's round-trip mode instead of re-dumping it, in the
layout `dvc exp run -S` writes (block lists and mappings, ruamel's default width): a later `-S`
then changes only its own line (tests/test_params_layout.py).
The result is read back with the same loader the stages use (PyYAML, YAML 1.1), and must hold
exactly the requested values: YAML 1.1 reads `1e-05` as a string, so floats are always
written with a decimal point (`1.0e-05`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from pipeline.common.io import atomic_path
from pipeline.common.params import ParamsError, dotted_slot, read_params


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, key order and flow style survive; DVC's width
    yaml.representer.add_representer(float, _represent_float)
    return yaml


def _represent_float(representer: Any, value: float) -> Any:
    text = repr(value)
    if text in ("inf", "-inf", "nan"):
        text = {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}[text]
    elif "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def write_params(source: Path, overrides: Mapping[str, Any], dest: Path) -> None:
    """Copy `source` to `dest` with `overrides` (dotted keys that must exist) applied.

    Written to a temporary file beside `dest` and renamed, so `dest` (possibly `source`
    itself, for `--apply`) is never left half-written; then read back and checked.
    """
    yaml = _yaml()
    data = yaml.load(source.read_text())
    for dotted, value in overrides.items():
        node, last = dotted_slot(data, dotted, str(source))  # ruamel's CommentedMap is a dict
        node[last] = _like(node.get(last), value)
    out = io.StringIO()
    yaml.dump(data, out)
    # A unique temporary name: several tuning workers may finish and write at the same moment.
    with atomic_path(dest) as tmp:
        tmp.write_text(out.getvalue())
        written = read_params(tmp)
        for dotted, value in overrides.items():
            slot, last = dotted_slot(written, dotted, str(dest))
            node = slot[last]
            expected = list(value) if isinstance(value, tuple) else value
            if node != expected or type(node) is not type(expected):
                raise ParamsError(f"writing {dotted}={value!r} read back as {node!r}")


def _like(old: Any, value: Any) -> Any:
    """`value`, as a flow-style list (`[128, 64]`) where the old value was one; a mapping in a list
    (an ensemble member's overrides) in block style, as DVC writes it."""
    if isinstance(value, (list, tuple)):
        seq = CommentedSeq([CommentedMap(v) if isinstance(v, Mapping) else v for v in value])
        if isinstance(old, CommentedSeq) and old.fa.flow_style():
            seq.fa.set_flow_style()
        if isinstance(old, CommentedSeq):
            seq.ca.comment = old.ca.comment  # an end-of-line comment may hang on the list itself
            seq.ca.items.update(old.ca.items)
        return seq
    if isinstance(value, Mapping) and isinstance(old, CommentedMap):
        # A mapping of mappings (tune.space) keeps one-line entries where the old one had them: a
        # block entry would end the section on a list, whose next comment a `-S` drops.
        flow = any(isinstance(v, CommentedMap) and v.fa.flow_style() for v in old.values())
        out = CommentedMap()
        for key, item in value.items():
            if flow and isinstance(item, Mapping):
                out[key] = CommentedMap(item)
                out[key].fa.set_flow_style()
            else:
                out[key] = _like(old.get(key), item)
        out.ca.comment = old.ca.comment
        out.ca.items.update({k: v for k, v in old.ca.items.items() if k in out})
        return out
    return value
