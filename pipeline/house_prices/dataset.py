"""The House Prices competition files: their published hashes, and fetching them from any source.

Sources: the archive bundled with the project (the default: a fresh clone works offline), the
D2L mirror, Kaggle's API, or a local folder. Whatever the source, both CSVs are checked
against the published SHA-1 values before they appear in `data/raw/`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.common.download import (
    FetchError,
    HashMismatch,
    Unreachable,
    copy_verified,
    download,
    extract_verified,
    verifies,
)
from pipeline.house_prices import COMPETITION


@dataclass(frozen=True)
class DataFile:
    """One competition file under its two published names, with its published SHA-1."""

    mirror_name: str  # the D2L mirror's name
    kaggle_name: str  # the name inside Kaggle's zip
    sha1: str


HOUSE_PRICES = {
    "train": DataFile("kaggle_house_pred_train.csv", "train.csv", "585e9cc93e70b39160e7921475f9bcd7d31219ce"),
    "test": DataFile("kaggle_house_pred_test.csv", "test.csv", "fa19780a7b011d9b009e8bff8e99922a8ee2eb90"),
}


SOURCES = ("bundled", "d2l", "kaggle", "local")

OTHER_SOURCES = ("other sources, one -S away: -S data.source=bundled (Kaggle's archive, shipped "
                 "in data/external/), -S data.source=kaggle (the Kaggle API, with credentials), or "
                 "-S data.source=local -S data.local_dir=DIR (a folder holding the zip or the two CSVs)")



def fetch_house_prices(source: str, targets: dict[str, Path], *, base_url: str, local_dir: Path | None,
                       verify: bool, bundled: Path, max_bytes: int) -> dict[str, str]:
    """Bring `train` and `test` to their targets from `source`; return what was done per file.

    `bundled` is Kaggle's archive shipped with the project, the default source: a fresh clone
    runs offline, and the published hashes still guard it like any download. A failure says
    what to do next: another source when one is unreachable, `data.verify` on a changed file.
    """
    try:
        return _fetch(source, targets, base_url=base_url, local_dir=local_dir, verify=verify, bundled=bundled,
                      max_bytes=max_bytes)
    except Unreachable as exc:
        raise Unreachable(f"{exc}; {OTHER_SOURCES}") from exc
    except HashMismatch as exc:
        raise HashMismatch(f"{exc} If you edited the file on purpose, set data.verify: false "
                           "(validation is then the only guard).") from exc


def _fetch(source: str, targets: dict[str, Path], *, base_url: str, local_dir: Path | None,
           verify: bool, bundled: Path, max_bytes: int) -> dict[str, str]:
    pending = {key: path for key, path in targets.items()
               if not (verify and verifies(path, HOUSE_PRICES[key].sha1))}
    actions = {key: "already verified" for key in targets if key not in pending}
    if not pending:
        return actions
    if source == "bundled":
        if not bundled.is_file():
            raise FetchError(f"the bundled archive {bundled} is missing from this checkout "
                             f"(restore it with `git checkout -- {bundled}`); " + OTHER_SOURCES)
        for key, path in pending.items():
            extract_verified(bundled, HOUSE_PRICES[key].kaggle_name, path,
                             HOUSE_PRICES[key].sha1 if verify else None, max_bytes)
            actions[key] = f"extracted from the bundled {bundled.name}"
    elif source == "d2l":
        for key, path in pending.items():
            url = base_url.rstrip("/") + "/" + HOUSE_PRICES[key].mirror_name
            download(url, path, HOUSE_PRICES[key].sha1 if verify else None, max_bytes=max_bytes)
            actions[key] = f"downloaded {url}"
    elif source == "local":
        if local_dir is None:
            raise FetchError("data.source is local but data.local_dir is empty: set "
                             "-S data.local_dir=DIR (a folder holding Kaggle's zip or the two CSVs)")
        actions.update(_from_local(local_dir, pending, verify, max_bytes))
    elif source == "kaggle":
        from pipeline.common.kaggle_api import download_competition_zip

        folder = next(iter(pending.values())).parent
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            archive = download_competition_zip(Path(tmp), COMPETITION)
            for key, path in pending.items():
                extract_verified(archive, HOUSE_PRICES[key].kaggle_name, path,
                                 HOUSE_PRICES[key].sha1 if verify else None, max_bytes)
                actions[key] = f"extracted from Kaggle's {archive.name}"
    else:
        raise FetchError(f"unknown data.source '{source}': choose {', '.join(SOURCES)}")
    return actions


def _from_local(folder: Path, pending: dict[str, Path], verify: bool, max_bytes: int) -> dict[str, str]:
    """A folder holding either the two CSVs (mirror or Kaggle names) or Kaggle's zip."""
    if not folder.is_dir():
        raise FetchError(f"data.local_dir {folder} is not a folder")
    actions = {}
    archives = sorted(folder.glob("*.zip"))
    for key, path in pending.items():
        spec = HOUSE_PRICES[key]
        sha1 = spec.sha1 if verify else None
        csv = next((folder / n for n in (spec.mirror_name, spec.kaggle_name) if (folder / n).is_file()), None)
        if csv is not None:
            copy_verified(csv, path, sha1, str(csv), max_bytes=max_bytes)
            actions[key] = f"copied {csv}"
        elif archives:
            extract_verified(archives[0], spec.kaggle_name, path, sha1, max_bytes)
            actions[key] = f"extracted from {archives[0]}"
        else:
            raise FetchError(f"{folder} holds neither {spec.mirror_name}, {spec.kaggle_name} "
                             "nor the competition zip")
    return actions
