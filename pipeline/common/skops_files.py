"""skops files written so that the same object gives the same bytes, atomically.

skops names its arrays and object ids after memory addresses and stamps the archive with the
current time, so two saves of one fit would differ in every byte and DVC would see a new model
after every run. `dump_skops` rewrites the archive canonically: ids and array files numbered in
the order the schema meets them, fixed timestamps, sorted members. Loading is skops' own.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from pipeline.common.io import atomic_path


def dump_skops(obj: Any, path: Path) -> None:
    """`skops.io.dump(obj, path)`, canonical and atomic."""
    import skops.io as sio

    with atomic_path(path) as tmp:
        sio.dump(obj, tmp)
        _canonical_skops(tmp)


def _canonical_skops(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
        arrays = {name: archive.read(name) for name in archive.namelist() if name != "schema.json"}
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def renumber(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("__id__"), int):
                node["__id__"] = ids.setdefault(node["__id__"], len(ids))
            if node.get("file") in arrays:
                node["file"] = files.setdefault(node["file"], f"{len(files)}.npy")
            for value in node.values():
                renumber(value)
        elif isinstance(node, list):
            for value in node:
                renumber(value)

    renumber(schema)
    members = {new: arrays[old] for old, new in files.items()}
    members["schema.json"] = json.dumps(schema, indent=2).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[name])


def load_skops(path: Path, trusted_prefixes: tuple[str, ...]) -> Any:
    """`skops.io.load`, trusting only types whose dotted names start with `trusted_prefixes`
    (scikit-learn, NumPy and the package's own transformers): a file holding anything else is
    refused before any of it is built."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    refused = sorted(t for t in untrusted if not t.startswith(trusted_prefixes) and t != "functools.partial")
    if refused:
        raise ValueError(f"{path} holds types outside {', '.join(trusted_prefixes)}: {refused}")
    return sio.load(path, trusted=untrusted)
