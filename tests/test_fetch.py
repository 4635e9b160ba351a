"""Fetching: verified, atomic, refusing unsafe archives, and clear about what went wrong."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pipeline.kaggle_api import KaggleUnavailable
from pipeline.fetch import HOUSE_PRICES, FetchError, UnsafeArchive, download, extract_verified, fetch_house_prices, sha1_of

TRAIN_SHA1 = HOUSE_PRICES["train"].sha1


def _targets(folder: Path) -> dict[str, Path]:
    return {"train": folder / "raw" / "train.csv", "test": folder / "raw" / "test.csv"}


def test_published_hashes_match_the_real_files(house_prices_dir: Path) -> None:
    for spec in HOUSE_PRICES.values():
        assert sha1_of(house_prices_dir / spec.mirror_name) == spec.sha1


def test_download_over_http_verifies_and_lands_atomically(http_server: str, tmp_path: Path) -> None:
    target = tmp_path / "train.csv"
    download(http_server + "kaggle_house_pred_train.csv", target, TRAIN_SHA1)
    assert sha1_of(target) == TRAIN_SHA1
    assert [p.name for p in tmp_path.iterdir()] == ["train.csv"]


def test_hash_mismatch_names_url_and_both_hashes_and_leaves_no_file(http_server: str, tmp_path: Path) -> None:
    url = http_server + "kaggle_house_pred_test.csv"
    with pytest.raises(FetchError) as err:
        download(url, tmp_path / "train.csv", TRAIN_SHA1)
    assert url in str(err.value) and TRAIN_SHA1 in str(err.value)
    assert HOUSE_PRICES["test"].sha1 in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_source_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="could not download http://127.0.0.1:9/"):
        download("http://127.0.0.1:9/kaggle_house_pred_train.csv", tmp_path / "train.csv", TRAIN_SHA1, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_on_server_is_an_error(http_server: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="404"):
        download(http_server + "nope.csv", tmp_path / "x.csv", None)


def test_files_that_already_verify_are_not_fetched_again(house_prices_dir: Path, tmp_path: Path) -> None:
    targets = _targets(tmp_path)
    fetch_house_prices("local", targets, base_url="", local_dir=house_prices_dir, verify=True)
    # An unreachable mirror proves nothing is downloaded the second time.
    actions = fetch_house_prices("d2l", targets, base_url="http://127.0.0.1:9/", local_dir=tmp_path, verify=True)
    assert actions == {"train": "already verified", "test": "already verified"}


def test_local_source_reads_the_kaggle_zip(house_prices_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "competition.zip").write_bytes((house_prices_dir / "house-prices-advanced-regression-techniques.zip").read_bytes())
    targets = _targets(tmp_path)
    actions = fetch_house_prices("local", targets, base_url="", local_dir=folder, verify=True)
    assert all("extracted" in a for a in actions.values())
    assert sha1_of(targets["test"]) == HOUSE_PRICES["test"].sha1


def test_edited_local_copy_is_refused_unless_verify_is_off(house_prices_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "edited"
    folder.mkdir()
    for spec in HOUSE_PRICES.values():
        (folder / spec.mirror_name).write_bytes((house_prices_dir / spec.mirror_name).read_bytes() + b"\n")
    targets = _targets(tmp_path)
    with pytest.raises(FetchError, match="SHA-1 mismatch"):
        fetch_house_prices("local", targets, base_url="", local_dir=folder, verify=True)
    assert not targets["train"].exists() and not targets["test"].exists()
    fetch_house_prices("local", targets, base_url="", local_dir=folder, verify=False)
    assert targets["train"].read_bytes().endswith(b"\n\n")


@pytest.mark.parametrize("member", ["../evil.csv", "/etc/evil.csv", "data/../../evil.csv"])
def test_zip_members_escaping_the_folder_are_refused(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train.csv", "Id\n1\n")
        zf.writestr(member, "pwned")
    with pytest.raises(UnsafeArchive, match="escapes"):
        extract_verified(archive, "train.csv", tmp_path / "out" / "train.csv", None)
    assert not (tmp_path / "out" / "train.csv").exists()
    assert not (tmp_path / "evil.csv").exists()


def test_not_a_zip_is_a_fetch_error(tmp_path: Path) -> None:
    bogus = tmp_path / "x.zip"
    bogus.write_text("not a zip")
    with pytest.raises(FetchError, match="not a valid zip"):
        extract_verified(bogus, "train.csv", tmp_path / "train.csv", None)


def test_kaggle_source_without_credentials_explains_how_to_authenticate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    with pytest.raises(KaggleUnavailable, match="KAGGLE_API_TOKEN"):
        fetch_house_prices("kaggle", _targets(tmp_path), base_url="", local_dir=tmp_path, verify=True)
    assert list((tmp_path / "raw").iterdir()) == []
