"""A generic competition's three files into data/raw, each checked against the SHA-1 that
`kpipe new` recorded in competition.yaml.

Sources: `local` (data/external, where `kpipe new` copied Kaggle's files, or Kaggle's zip
placed there) and `kaggle` (the competition's zip through the Kaggle client). A file in
data/raw that already verifies is kept.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from pipeline.common.download import FetchError, copy_verified, extract_verified, safe_members, verifies
from pipeline.tabular.competition import Competition, is_sample_submission

ROLES = ("train", "test", "sample")


def file_roles(competition: Competition) -> dict[str, str]:
    """Each role's file name in Kaggle's download (the sample may be e.g. gender_submission.csv)."""
    names = list(competition.files)
    sample = [n for n in names if is_sample_submission(n)]
    roles = {"train": "train.csv", "test": "test.csv", "sample": sample[0] if sample else "sample_submission.csv"}
    missing = [n for n in roles.values() if n not in competition.files]
    if missing:
        raise FetchError(f"competition.yaml lists no SHA-1 for {', '.join(missing)}")
    return roles


def fetch_competition(competition: Competition, source: str, external_dir: Path, targets: dict[str, Path],
                      max_bytes: int) -> dict[str, str]:
    """Bring the train, test and sample files to `targets` (by role); what was done per role."""
    roles = file_roles(competition)
    pending = {role: path for role, path in targets.items() if not verifies(path, competition.files[roles[role]])}
    actions = {role: "already verified" for role in targets if role not in pending}
    if not pending:
        return actions
    if source == "local":
        for role, path in pending.items():
            name = roles[role]
            found = sorted(external_dir.rglob(name)) if external_dir.is_dir() else []
            if found:
                copy_verified(found[0], path, competition.files[name], str(found[0]), max_bytes=max_bytes)
                actions[role] = f"copied {found[0]}"
                continue
            archive = _archive_with(external_dir, name)
            if archive is None:
                raise FetchError(f"{external_dir} holds neither {name} nor a zip with it; put Kaggle's download "
                                 "there, or fetch it with -S data.source=kaggle (Kaggle credentials needed)")
            extract_verified(archive[0], archive[1], path, competition.files[name], max_bytes)
            actions[role] = f"extracted from {archive[0]}"
        return actions
    if source == "kaggle":
        from pipeline.common.kaggle_api import download_competition_zip

        folder = next(iter(pending.values())).parent
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            downloaded = download_competition_zip(Path(tmp), competition.slug)
            for role, path in pending.items():
                name = roles[role]
                member = _member(downloaded, name)
                if member is None:
                    raise FetchError(f"Kaggle's {downloaded.name} has no {name}")
                extract_verified(downloaded, member, path, competition.files[name], max_bytes)
                actions[role] = f"extracted from Kaggle's {downloaded.name}"
        return actions
    raise FetchError(f"unknown data.source {source!r}: choose local or kaggle")


def _member(archive: Path, name: str) -> str | None:
    try:
        with zipfile.ZipFile(archive) as zf:
            return next((m for m in safe_members(zf) if Path(m).name == name), None)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{archive} is not a valid zip archive: {exc}") from exc


def _archive_with(folder: Path, name: str) -> tuple[Path, str] | None:
    for archive in sorted(folder.glob("*.zip")) if folder.is_dir() else []:
        member = _member(archive, name)
        if member is not None:
            return archive, member
    return None
