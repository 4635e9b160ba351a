"""The real, unmodified `kaggle` client (KaggleApi in-process, the CLI as a subprocess) against
the loopback stand-in in `kaggle_standin.py`.

Every test runs with a throwaway HOME and KAGGLE_CONFIG_DIR and no KAGGLE_* variables from the
caller, so neither the real home nor real credentials are read or written. The observations
these tests pin (what the client raises, prints and exits with) are the ones an adapter over
the client has to handle.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from kaggle_standin import ARCHIVE, COMPETITION, KaggleStandIn, write_credentials

TOKEN = "KGAT_standin_0123456789abcdef"
USER = "alice"
KEY = "0123456789abcdef0123456789abcdef"
CLI = Path(sys.executable).parent / "kaggle"
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
              "no_proxy", "NO_PROXY")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway HOME (the client reads ~/.kaggle/access_token from there) with nothing of the
    caller's Kaggle or proxy settings left in this process's environment."""
    home = tmp_path / "home"
    home.mkdir()
    for var in list(os.environ):
        if var.startswith("KAGGLE_") or var in PROXY_VARS or var in ("VERBOSE", "VERBOSE_OUTPUT"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / ".kaggle"))
    return home


@pytest.fixture
def standin() -> Iterator[KaggleStandIn]:
    server = KaggleStandIn(tokens={TOKEN: USER}, api_keys={USER: KEY}, daily_limit=3)
    with server:
        yield server
    assert server.threads_alive() == 0  # the server and every connection thread ended


def make_api(standin: KaggleStandIn, home: Path, monkeypatch: pytest.MonkeyPatch, **creds: str) -> Any:
    """An authenticated KaggleApi talking to `standin`, configured only through the environment
    and credential files. Credentials default to the valid token in ~/.kaggle/access_token."""
    write_credentials(home, **(creds or {"token": TOKEN}))
    for var, value in standin.client_env().items():
        monkeypatch.setenv(var, value)
    # `import kaggle` runs KaggleApi.authenticate() and reads KAGGLE_API_ENVIRONMENT and
    # KAGGLE_CONFIG_DIR into class attributes: import only now that the environment is set.
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    # If another test imported `kaggle` first, its class attributes hold that test's settings.
    api.config_dir = str(home / ".kaggle")
    api.config = str(home / ".kaggle" / "kaggle.json")
    if "--local" not in api.args:
        api.args = [*api.args, "--local"]
    api.authenticate()
    return api


def cli(standin: KaggleStandIn, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real `kaggle` CLI against `standin` with `home` as its HOME."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("KAGGLE_") and k not in PROXY_VARS and k not in ("VERBOSE", "VERBOSE_OUTPUT")}
    full = {**base, "HOME": str(home), "KAGGLE_CONFIG_DIR": str(home / ".kaggle"), **standin.client_env(), **env}
    return subprocess.run([str(CLI), *args], env=full, capture_output=True, text=True, timeout=60)


def constant_submission(path: Path, price: float = 180_000.0) -> bytes:
    """A valid submission file for the test set's Ids, from the competition's real test.csv."""
    with zipfile.ZipFile(ARCHIVE) as archive:
        ids = [row["Id"] for row in csv.DictReader(io.TextIOWrapper(archive.open("test.csv"), "utf-8"))]
    path.write_text("Id,SalePrice\n" + "".join(f"{i},{price}\n" for i in ids))
    return path.read_bytes()


def submissions_csv(standin: KaggleStandIn, home: Path) -> list[dict[str, str]]:
    result = cli(standin, home, "competitions", "submissions", "-c", COMPETITION, "--csv")
    assert result.returncode == 0, result.stderr
    return list(csv.DictReader(io.StringIO(result.stdout)))


# -- download ------------------------------------------------------------------------------------


def test_api_download_lands_the_real_zip(standin: KaggleStandIn, home: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    api = make_api(standin, home, monkeypatch)
    dest = tmp_path / "download"
    assert api.competition_download_files(COMPETITION, path=str(dest), force=True, quiet=False) is None
    archive = dest / f"{COMPETITION}.zip"
    assert archive.read_bytes() == ARCHIVE.read_bytes()
    assert os.listdir(dest) == [archive.name]  # no .kaggle-partial marker left behind
    assert "Downloading house-prices-advanced-regression-techniques.zip" in capsys.readouterr().out
    rpc, blob = [r for r in standin.requests if "IntrospectToken" not in r.path][-2:]
    assert (rpc.path, rpc.host, rpc.status, rpc.auth) == (
        "/api/v1/competitions.CompetitionApiService/DownloadDataFiles", "localhost", 302, f"bearer:{USER}")
    # The redirect goes to another host, so requests drops the Authorization header on the way.
    assert (blob.method, blob.status, blob.auth) == ("GET", 200, None)


def test_api_lists_and_downloads_single_files(standin: KaggleStandIn, home: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    api = make_api(standin, home, monkeypatch)
    listing = api.competition_list_files(COMPETITION)
    assert sorted((f.name, f.total_bytes) for f in listing.files) == sorted(
        (i.filename, i.file_size) for i in zipfile.ZipFile(ARCHIVE).infolist())
    api.competition_download_file(COMPETITION, "train.csv", path=str(tmp_path), force=True, quiet=True)
    assert (tmp_path / "train.csv").read_bytes() == zipfile.ZipFile(ARCHIVE).read("train.csv")


def test_cli_download_with_legacy_key_in_the_environment(standin: KaggleStandIn, home: Path,
                                                         tmp_path: Path) -> None:
    dest = tmp_path / "cli-download"
    result = cli(standin, home, "competitions", "download", "-c", COMPETITION, "-p", str(dest),
                 KAGGLE_USERNAME=USER, KAGGLE_KEY=KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (dest / f"{COMPETITION}.zip").read_bytes() == ARCHIVE.read_bytes()
    assert standin.requests[0].auth == f"basic:{USER}"


# -- submit and list ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["access_token-file", "KAGGLE_API_TOKEN", "kaggle.json", "KAGGLE_USERNAME-KAGGLE_KEY"])
def test_cli_submit_sends_exactly_the_file_and_message(standin: KaggleStandIn, home: Path, tmp_path: Path,
                                                       how: str) -> None:
    env: dict[str, str] = {}
    if how == "access_token-file":
        write_credentials(home, token=TOKEN)
    elif how == "KAGGLE_API_TOKEN":
        env = {"KAGGLE_API_TOKEN": TOKEN}
    elif how == "kaggle.json":
        write_credentials(home, username=USER, key=KEY)
    else:
        env = {"KAGGLE_USERNAME": USER, "KAGGLE_KEY": KEY}
    path = tmp_path / "submission.csv"
    sent = constant_submission(path)
    message = "kaggle-pipeline 1a2b3c4 cv=0.1234 'quoted' & spaced"
    result = cli(standin, home, "competitions", "submit", "-c", COMPETITION, "-f", str(path), "-m", message, **env)

    assert result.returncode == 0, result.stdout + result.stderr
    (sub,) = standin.submissions
    assert (sub.content, sub.description, sub.file_name, sub.username) == (sent, message, "submission.csv", USER)
    assert result.stdout.splitlines() == [
        f"Submission ref: {sub.ref}",
        "2 submissions remaining today.",  # the CLI's extra GetSubmissionLimits call
        "Successfully submitted to House Prices - Advanced Regression Techniques",
    ]
    scheme = "bearer" if "token" in how.lower() else "basic"
    (upload_token,) = standin.uploads
    rpcs = [(r.method, r.path, r.status, r.auth) for r in standin.requests]
    api = "/api/v1/competitions.CompetitionApiService/"
    assert rpcs[-4:] == [
        ("POST", api + "StartSubmissionUpload", 200, f"{scheme}:{USER}"),
        ("PUT", f"/_storage/upload/{upload_token}", 200, None),  # to the upload URL, no credentials
        ("POST", api + "CreateSubmission", 200, f"{scheme}:{USER}"),
        ("POST", api + "GetSubmissionLimits", 200, f"{scheme}:{USER}"),
    ]


def test_cli_submissions_lists_pending_then_the_public_score(standin: KaggleStandIn, home: Path,
                                                             tmp_path: Path) -> None:
    write_credentials(home, token=TOKEN)
    path = tmp_path / "submission.csv"
    sent = constant_submission(path)
    submitted = cli(standin, home, "competitions", "submit", "-c", COMPETITION, "-f", str(path), "-m", "first")
    assert submitted.returncode == 0
    ref = str(standin.submissions[0].ref)

    (pending,) = submissions_csv(standin, home)
    (scored,) = submissions_csv(standin, home)

    expected_score, _ = standin.score(sent)
    assert expected_score == "0.09044"  # a constant 180000 against sample_submission.csv's prices
    fields = ["ref", "fileName", "description", "status", "publicScore", "privateScore"]
    assert [pending[f] for f in fields] == [ref, "submission.csv", "first", "SubmissionStatus.PENDING", "", ""]
    assert [scored[f] for f in fields] == [ref, "submission.csv", "first", "SubmissionStatus.COMPLETE",
                                           expected_score, ""]
    datetime.fromisoformat(scored["date"])  # printed as a naive UTC datetime

    table = cli(standin, home, "competitions", "submissions", "-c", COMPETITION)
    assert table.stdout.splitlines()[0].split() == ["ref", "fileName", "date", "description", "status",
                                                    "publicScore", "privateScore"]


def test_cli_shows_the_submission_limits_and_the_leaderboard(home: Path, tmp_path: Path) -> None:
    write_credentials(home, token=TOKEN)
    teams = [("team-a", 0.11), ("team-b", 0.09), ("team-c", 0.2)]
    with KaggleStandIn(tokens={TOKEN: USER}, daily_limit=3, leaderboard=teams, pending_reads=0) as standin:
        path = tmp_path / "submission.csv"
        constant_submission(path)
        sent = cli(standin, home, "competitions", "submit", "-c", COMPETITION, "-f", str(path), "-m", "m")
        assert sent.returncode == 0, sent.stderr
        submissions_csv(standin, home)  # scored now
        limits = cli(standin, home, "competitions", "submission-limits", "-c", COMPETITION)
        shown = cli(standin, home, "competitions", "leaderboard", "-c", COMPETITION, "--show", "--csv")
        downloaded = cli(standin, home, "competitions", "leaderboard", "-c", COMPETITION, "--download",
                         "-p", str(tmp_path))
    assert limits.stdout.splitlines() == ["Submissions today: 1", "Lifetime submissions: 1", "Remaining today: 2"]
    board = list(csv.DictReader(io.StringIO(shown.stdout)))
    assert [(r["teamName"], r["score"]) for r in board] == [
        ("team-b", "0.09000"), (USER, "0.09044"), ("team-a", "0.11000"), ("team-c", "0.20000")]  # best first
    assert downloaded.returncode == 0, downloaded.stderr
    with zipfile.ZipFile(tmp_path / f"{COMPETITION}.zip") as zf:
        (name,) = zf.namelist()
        rows = list(csv.DictReader(io.TextIOWrapper(zf.open(name), "utf-8")))
    assert name.endswith("publicleaderboard.csv") and [r["TeamName"] for r in rows] == [r["teamName"] for r in board]


def test_api_submit_then_poll_until_scored(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kagglesdk.competitions.types.submission_status import SubmissionStatus

    with KaggleStandIn(tokens={TOKEN: USER}, scoring_delay=0.3, pending_reads=0) as standin:
        api = make_api(standin, home, monkeypatch)
        path = tmp_path / "submission.csv"
        sent = constant_submission(path, price=200_000.0)
        started = time.monotonic()
        response = api.competition_submit(str(path), "api try", COMPETITION, quiet=True)
        assert type(response).__name__ == "ApiCreateSubmissionResponse"
        assert response.message == "Successfully submitted to House Prices - Advanced Regression Techniques"
        assert response.ref == standin.submissions[0].ref

        polls = []
        while True:
            (sub,) = api.competition_submissions(COMPETITION)
            polls.append(sub.status)
            if sub.status != SubmissionStatus.PENDING:
                break
            time.sleep(0.05)
        assert time.monotonic() - started >= 0.3 and polls[0] == SubmissionStatus.PENDING
        assert type(sub).__name__ == "ApiSubmission"
        assert (sub.ref, sub.status, sub.public_score, sub.description, sub.file_name) == (
            response.ref, SubmissionStatus.COMPLETE, standin.score(sent)[0], "api try", "submission.csv")
        assert isinstance(sub.date, datetime) and sub.date.tzinfo is None
        # Optional string fields the server leaves out read as "", not None.
        assert sub.private_score == "" and sub.error_description == ""
        assert api.get_submission(response.ref).public_score == sub.public_score
        limits = api.competition_get_submission_limits(COMPETITION)
        assert (limits.num_today, limits.num_allowed_now) == (1, 4)


def test_a_file_that_is_not_a_submission_ends_in_error(standin: KaggleStandIn, home: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from kagglesdk.competitions.types.submission_status import SubmissionStatus

    api = make_api(standin, home, monkeypatch)
    path = tmp_path / "bad.csv"
    path.write_text("Id,SalePrice\n1461,1\n")
    api.competition_submit(str(path), "bad", COMPETITION, quiet=True)
    api.competition_submissions(COMPETITION)
    (sub,) = api.competition_submissions(COMPETITION)
    assert sub.status == SubmissionStatus.ERROR and sub.public_score == ""
    assert sub.error_description.startswith("Submission must have 1459 rows")


# -- refusals ------------------------------------------------------------------------------------


def test_api_401_wrong_key(standin: KaggleStandIn, home: Path, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong legacy key is only noticed at the first call: requests.HTTPError, status 401."""
    api = make_api(standin, home, monkeypatch, username=USER, key="wrong")
    with pytest.raises(requests.HTTPError) as info:
        api.competition_download_files(COMPETITION, path=str(tmp_path), force=True, quiet=True)
    assert info.value.response.status_code == 401
    assert str(info.value) == ("401 Client Error: Unauthorized for url: "
                               "http://localhost/api/v1/competitions.CompetitionApiService/DownloadDataFiles")
    with pytest.raises(requests.HTTPError, match="^401 Client Error: Unauthorized for url: .*StartSubmissionUpload$"):
        api.competition_submit(str(ARCHIVE), "m", COMPETITION, quiet=True)
    assert not list(tmp_path.glob("*.zip")) and not standin.submissions


def test_api_unknown_token_makes_authenticate_exit(standin: KaggleStandIn, home: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    """A token the server does not know (and no kaggle.json): authenticate() prints help to
    stdout and calls exit(1) -- SystemExit, not an HTTP error."""
    with pytest.raises(SystemExit) as info:
        make_api(standin, home, monkeypatch, token="not-a-valid-token")
    assert info.value.code == 1
    assert capsys.readouterr().out.startswith("Authentication required to call the Kaggle API.")


def test_api_429_daily_limit(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with KaggleStandIn(tokens={TOKEN: USER}, daily_limit=1) as standin:
        api = make_api(standin, home, monkeypatch)
        path = tmp_path / "submission.csv"
        constant_submission(path)
        api.competition_submit(str(path), "one", COMPETITION, quiet=True)
        started = time.monotonic()
        with pytest.raises(requests.HTTPError) as info:
            api.competition_submit(str(path), "two", COMPETITION, quiet=True)
        assert time.monotonic() - started < 5  # raised at once: competition_submit does not retry 429
        assert info.value.response.status_code == 429
        assert str(info.value) == ("Your team has used its daily Submission allowance (1) today, "
                                   "please try again tomorrow UTC.")
        assert [s.description for s in standin.submissions] == ["one"]


def test_api_403_rules_not_accepted(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with KaggleStandIn(tokens={TOKEN: USER}, rules_accepted=False) as standin:
        api = make_api(standin, home, monkeypatch)
        with pytest.raises(requests.HTTPError) as info:
            api.competition_download_files(COMPETITION, path=str(tmp_path), force=True, quiet=True)
        assert info.value.response.status_code == 403
        assert str(info.value).startswith("You must accept this competition's rules before you'll be able to "
                                          "download files.")
        path = tmp_path / "submission.csv"
        constant_submission(path)
        with pytest.raises(requests.HTTPError) as info:
            api.competition_submit(str(path), "m", COMPETITION, quiet=True)
        assert info.value.response.status_code == 403
        assert "able to submit" in str(info.value)
        assert not standin.submissions and not list(tmp_path.glob("*.zip"))


@pytest.mark.parametrize("case", ["401", "429", "403"])
def test_cli_refusals_exit_1(home: Path, tmp_path: Path, case: str) -> None:
    """What the CLI shows: 401 -> the authentication help on stdout, nothing on stderr;
    403/429 -> the server's message, a blank line and the CLI's hint on stderr. Exit code 1."""
    path = tmp_path / "submission.csv"
    constant_submission(path)
    submit = ("competitions", "submit", "-c", COMPETITION, "-f", str(path), "-m", "m")
    with KaggleStandIn(api_keys={USER: KEY}, daily_limit=0 if case == "429" else 5,
                       rules_accepted=case != "403") as standin:
        write_credentials(home, username=USER, key="wrong" if case == "401" else KEY)
        result = cli(standin, home, *submit)
    assert result.returncode == 1
    assert not standin.submissions
    if case == "401":
        assert result.stdout.startswith("Authentication required to call the Kaggle API.")
        assert result.stderr == ""
    elif case == "429":
        assert result.stdout == ""
        assert result.stderr.endswith(
            "Your team has used its daily Submission allowance (0) today, please try again tomorrow UTC.\n\n"
            "You have been rate limited. Wait a little while before retrying.\n")
    else:
        assert result.stdout == ""
        assert "You must accept this competition's rules before you'll be able to submit." in result.stderr
        assert result.stderr.endswith("you may need to accept its rules first at\n"
                                      "  https://www.kaggle.com/competitions/<competition>/rules\n")


# -- the server itself ---------------------------------------------------------------------------


def test_server_refuses_unsigned_storage_and_closes_its_port() -> None:
    with KaggleStandIn() as standin:
        url = standin.url
        port = int(url.rsplit(":", 1)[1])
        answer = requests.get(f"{url}/_storage/archive/{COMPETITION}.zip?sig=guess", timeout=5,
                              proxies={"http": ""})
        assert answer.status_code == 403
        answer = requests.post(f"{url}/api/v1/competitions.CompetitionApiService/ListSubmissions",
                               json={"competitionName": COMPETITION}, timeout=5, proxies={"http": ""})
        assert answer.status_code == 401
    assert standin.threads_alive() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

