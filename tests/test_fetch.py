"""Fetching: verified, atomic, refusing unsafe archives, and clear about what went wrong."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pipeline.common.download import FetchError, UnsafeArchive, download, extract_verified, sha1_of
from pipeline.common.kaggle_api import KaggleUnavailable
from pipeline.house_prices.dataset import HOUSE_PRICES, fetch_house_prices

TRAIN_SHA1 = HOUSE_PRICES["train"].sha1
CAP = 50 << 20  # params.yaml's data.max_file_mb
BUNDLED = Path(__file__).resolve().parents[1] / "data" / "external" / "house-prices-advanced-regression-techniques.zip"


def _fetch(source: str, targets: dict[str, Path], **options: object) -> dict[str, str]:
    """`fetch_house_prices` with the shipped defaults: the bundled archive, verification, the cap."""
    return fetch_house_prices(source, targets, **{"base_url": "", "local_dir": None, "verify": True,
                                                  "bundled": BUNDLED, "max_bytes": CAP, **options})


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


@pytest.mark.parametrize("host", ["127.0.0.1:9", "d2l-mirror.invalid"])
def test_unreachable_mirror_says_what_to_do_and_leaves_nothing(tmp_path: Path, host: str) -> None:
    """Offline (refused, or a name that does not resolve): the URL, and the one-line alternatives."""
    targets = _targets(tmp_path)
    with pytest.raises(FetchError) as err:
        _fetch("d2l", targets, base_url=f"http://{host}/")
    message = str(err.value)
    assert f"could not download http://{host}/kaggle_house_pred_train.csv: no connection" in message
    for advice in ("-S data.source=bundled", "-S data.source=kaggle", "-S data.source=local"):
        assert advice in message
    assert "Traceback" not in message and "urllib3" not in message
    assert list(targets["train"].parent.iterdir()) == []


def test_a_download_error_names_the_url_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="could not download http://127.0.0.1:9/x.csv: no connection"):
        download("http://127.0.0.1:9/x.csv", tmp_path / "x.csv", None, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_the_bundled_archive_is_the_default_source_and_needs_no_network(tmp_path: Path) -> None:
    import yaml

    params = yaml.safe_load((BUNDLED.parents[2] / "params.yaml").read_text())
    assert params["data"]["source"] == "bundled"
    targets = _targets(tmp_path)
    # The mirror URL is unreachable: only the bundled archive can have supplied the files.
    actions = _fetch("bundled", targets, base_url="http://127.0.0.1:9/")
    assert all("bundled" in a for a in actions.values())
    assert {k: sha1_of(p) for k, p in targets.items()} == {k: s.sha1 for k, s in HOUSE_PRICES.items()}
    assert sorted(p.name for p in targets["train"].parent.iterdir()) == ["test.csv", "train.csv"]


def test_a_missing_bundled_archive_names_the_file_and_the_alternatives(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"missing.*git checkout.*-S data.source=kaggle"):
        _fetch("bundled", _targets(tmp_path), bundled=tmp_path / "gone.zip")


def test_a_tampered_bundled_archive_names_the_member_and_both_hashes(tmp_path: Path) -> None:
    archive = tmp_path / "tampered.zip"
    with zipfile.ZipFile(BUNDLED) as good, zipfile.ZipFile(archive, "w") as bad:
        for name in ("train.csv", "test.csv"):
            bad.writestr(name, good.read(name) + (b"1,2\n" if name == "train.csv" else b""))
    targets = _targets(tmp_path)
    with pytest.raises(FetchError) as err:
        _fetch("bundled", targets, bundled=archive)
    message = str(err.value)
    assert f"{archive}!train.csv" in message and TRAIN_SHA1 in message
    assert not targets["train"].exists()


def test_local_source_without_a_folder_says_which_param_to_set(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="data.local_dir is empty"):
        _fetch("local", _targets(tmp_path))


def test_missing_file_on_server_is_an_error(http_server: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="404"):
        download(http_server + "nope.csv", tmp_path / "x.csv", None)


def test_files_that_already_verify_are_not_fetched_again(house_prices_dir: Path, tmp_path: Path) -> None:
    targets = _targets(tmp_path)
    _fetch("local", targets, local_dir=house_prices_dir)
    # An unreachable mirror proves nothing is downloaded the second time.
    actions = _fetch("d2l", targets, base_url="http://127.0.0.1:9/")
    assert actions == {"train": "already verified", "test": "already verified"}


def test_local_source_reads_the_kaggle_zip(house_prices_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "competition.zip").write_bytes(BUNDLED.read_bytes())
    targets = _targets(tmp_path)
    actions = _fetch("local", targets, local_dir=folder)
    assert all("extracted" in a for a in actions.values())
    assert sha1_of(targets["test"]) == HOUSE_PRICES["test"].sha1


def test_edited_local_copy_is_refused_unless_verify_is_off(house_prices_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "edited"
    folder.mkdir()
    for spec in HOUSE_PRICES.values():
        (folder / spec.mirror_name).write_bytes((house_prices_dir / spec.mirror_name).read_bytes() + b"\n")
    targets = _targets(tmp_path)
    with pytest.raises(FetchError, match="SHA-1 mismatch"):
        _fetch("local", targets, local_dir=folder)
    assert not targets["train"].exists() and not targets["test"].exists()
    _fetch("local", targets, local_dir=folder, verify=False)
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
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where the client looks for a token
    with pytest.raises(KaggleUnavailable, match="KAGGLE_API_TOKEN"):
        _fetch("kaggle", _targets(tmp_path), local_dir=tmp_path)
    assert list((tmp_path / "raw").iterdir()) == []


def test_an_oversized_zip_member_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A member whose declared size passes the cap (here 1 MB) is never extracted."""
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.csv", b"Id\n" + b"1\n" * (1 << 20))
        zf.writestr("test.csv", b"Id\n2\n")
    targets = _targets(tmp_path)
    with pytest.raises(FetchError, match=r"big.zip!train.csv is larger than the 1 MB cap"):
        _fetch("bundled", targets, bundled=archive, verify=False, max_bytes=1 << 20)
    assert not targets["train"].parent.exists() or list(targets["train"].parent.iterdir()) == []


def test_a_download_past_the_cap_is_cut_off(http_server: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="larger than the 100000 bytes cap"):
        download(http_server + "kaggle_house_pred_train.csv", tmp_path / "train.csv", None, max_bytes=100_000)
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_download_are_removed_on_the_next_run(tmp_path: Path) -> None:
    targets = _targets(tmp_path)
    targets["train"].parent.mkdir(parents=True)
    stale = targets["train"].parent / ".train.csv.abc123.part"  # what kill -9 mid-download leaves
    stale.write_bytes(b"half a file")
    _fetch("bundled", targets)
    assert sorted(p.name for p in targets["train"].parent.iterdir()) == ["test.csv", "train.csv"]
