"""The pipeline's Kaggle paths (`data.source: kaggle`, `kpipe submit`, `kpipe submissions`)
through the real, unmodified `kaggle` client, against the loopback stand-in.

Every command runs as a subprocess, as a user runs it: a fresh interpreter imports `kaggle`
with the stand-in's environment (the client reads `KAGGLE_API_ENVIRONMENT` once, at import),
and a throwaway HOME holds the credentials, so neither the real home nor real credentials
are read or written. A `kpipe` process takes seconds to start, so these are `e2e` tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import BIN, ROOT
from kaggle_standin import COMPETITION, KaggleStandIn, write_credentials

from pipeline.common.download import sha1_of
from pipeline.common.kaggle_api import credentials_hint
from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.dataset import HOUSE_PRICES
from pipeline.house_prices.submission import write_submission
from pipeline.submissions.log import LogRow, SubmissionLog
from pipeline.submissions.workflow import describe_row

TOKEN = "KGAT_pipeline_0123456789abcdef"
USER = "alice"
KEY = "0123456789abcdef0123456789abcdef"
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
              "no_proxy", "NO_PROXY")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def project(tmp_path: Path, clean_frames) -> ProjectPaths:
    """A project folder as `dvc repro` leaves it: validated test rows, a CV score, params.yaml
    and a checked submission (every house at its test row's median-like price)."""
    _, test = clean_frames
    paths = ProjectPaths(tmp_path / "project")
    paths.interim_dir.mkdir(parents=True)
    test.to_parquet(paths.clean_test)
    paths.house_metrics_dir.mkdir(parents=True)
    paths.cv_metrics.write_text('{"log_rmse_mean": 0.1234, "log_rmse_std": 0.0111}')
    shutil.copy(ROOT / "params.yaml", paths.params)
    shutil.copy(ROOT / "dvc.yaml", paths.dvc_yaml)
    prices = 1_000.0 * (100 + test["OverallQual"].to_numpy() * 20)
    write_submission(pd.DataFrame({"Id": test["Id"], "SalePrice": prices}), test["Id"].to_numpy(), paths.submission)
    return paths


def kpipe_env(standin: KaggleStandIn, home: Path, **env: str) -> dict[str, str]:
    """This process's environment without Kaggle's or proxy variables, routed to `standin`."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("KAGGLE_") and k not in PROXY_VARS and k not in ("VERBOSE", "VERBOSE_OUTPUT")}
    return {**base, "HOME": str(home), "TQDM_DISABLE": "1", **standin.client_env(), **env}


def kpipe(standin: KaggleStandIn, home: Path, project: ProjectPaths, *args: str,
          **env: str) -> subprocess.CompletedProcess[str]:
    """`kpipe <args>` in `project`, its Kaggle client routed to `standin`, HOME = `home`."""
    return subprocess.run([str(BIN / "kpipe"), *args], cwd=project.root, env=kpipe_env(standin, home, **env),
                          capture_output=True, text=True, timeout=120)


# -- credentials --------------------------------------------------------------------------------


def test_the_token_is_looked_for_in_home_whatever_kaggle_config_dir_says(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kagglesdk reads ~/.kaggle/access_token from HOME only; KAGGLE_CONFIG_DIR locates kaggle.json."""
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    assert credentials_hint() is None
    elsewhere = tmp_path / "config"
    write_credentials(elsewhere, token=TOKEN)  # a token where the client never looks
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(elsewhere / ".kaggle"))
    assert credentials_hint() is None
    write_credentials(elsewhere, username=USER, key=KEY)  # kaggle.json there is read
    assert credentials_hint() == str(elsewhere / ".kaggle" / "kaggle.json")
    write_credentials(home, token=TOKEN)
    assert credentials_hint() == str(home / ".kaggle" / "access_token")
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    assert credentials_hint() == "KAGGLE_API_TOKEN"


# -- submit ---------------------------------------------------------------------------------------


def test_each_outcome_of_a_submission_reads_as_one_line() -> None:
    row = LogRow(ref=7, date="2026-12-01T10:00:00+00:00", competition=COMPETITION, status="COMPLETE",
                 public_score=0.12345, cv_mean=0.1201, cv_std=0.0102)
    assert describe_row(row) == "submission 7 scored: public score 0.12345 (CV 0.12010 ± 0.01020)"
    row.rank, row.teams, row.percentile = 3, 40, 7.5
    assert describe_row(row).endswith(", rank 3 of 40 (top 7.5%)")
    failed = LogRow(ref=8, date=row.date, competition=COMPETITION, status="ERROR",
                    error="Submission must have 1459 rows")
    assert describe_row(failed) == "Kaggle could not score submission 8: Submission must have 1459 rows"


@pytest.mark.e2e
def test_kpipe_submit_waits_no_longer_than_it_was_told(home: Path, project: ProjectPaths) -> None:
    write_credentials(home, token=TOKEN)
    with KaggleStandIn(tokens={TOKEN: USER}, scoring_delay=600) as standin:
        started = time.monotonic()
        result = kpipe(standin, home, project, "submit", "-m", "slow", "--wait", "1", "--poll-interval", "0.3")
        waited = time.monotonic() - started
        (sub,) = standin.submissions
    assert result.returncode == 0, result.stderr  # sent; the score comes later
    assert result.stdout.splitlines()[-1] == (
        f"submission {sub.ref} is still PENDING on Kaggle; `kpipe submissions` records its score once it has one")
    assert waited < 30


@pytest.mark.e2e
def test_kpipe_submit_uploads_our_file_waits_for_the_score_and_prints_it(home: Path, project: ProjectPaths) -> None:
    write_credentials(home, token=TOKEN)
    with KaggleStandIn(tokens={TOKEN: USER}, pending_reads=2) as standin:
        result = kpipe(standin, home, project, "submit", "-m", "first try", "--poll-interval", "0.1")
        (sub,) = standin.submissions

    assert result.returncode == 0, result.stdout + result.stderr
    assert sub.content == project.submission.read_bytes() and sub.description == "first try"
    score, _ = standin.score(sub.content)
    assert result.stdout.splitlines() == [
        # a file written by hand, not by `kpipe predict`: no model to put the score back on
        f"note: no tracked model wrote {project.submission} (no MLflow run of 'house-prices' names its SHA-1): "
        "its log row will carry no CV or MLflow run",
        "Kaggle: 5 submissions remaining today (0 made today, 0 in all)",
        f"submitted {project.submission} as submission {sub.ref}: "
        "Successfully submitted to House Prices - Advanced Regression Techniques",
        f"submission {sub.ref} scored: public score {score}, rank 1 of 1 (top 100.0%)",
    ]
    assert f"waiting for Kaggle to score submission {sub.ref}: PENDING after 0 s" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_kpipe_submissions_completes_the_log_and_lists_past_submissions(home: Path, project: ProjectPaths) -> None:
    write_credentials(home, username=USER, key=KEY)
    with KaggleStandIn(api_keys={USER: KEY}, pending_reads=0) as standin:
        first = kpipe(standin, home, project, "submit", "--wait", "0")
        assert first.returncode == 0, first.stderr
        again = kpipe(standin, home, project, "submit", "-m", "second", "--wait", "0")
        assert len(standin.submissions) == 1  # the same bytes are refused before anything is sent
        forced = kpipe(standin, home, project, "submit", "-m", "second", "--wait", "0", "--force")
        # A submission made with Kaggle's own CLI, which the log does not know yet.
        by_hand = subprocess.run([str(BIN / "kaggle"), "competitions", "submit", COMPETITION, "-f",
                                  str(project.submission), "-m", "by hand"], capture_output=True, text=True,
                                 env={**kpipe_env(standin, home)}, timeout=120)
        assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr
        result = kpipe(standin, home, project, "submissions")
        synced = SubmissionLog.read(project.submission_log)
        standin.reveal_private(0.01)  # the competition ends
        final = kpipe(standin, home, project, "submissions")
        refs = [s.ref for s in standin.submissions]
        score, _ = standin.score(project.submission.read_bytes())

    (ref1, ref2, ref3) = refs
    assert "Kaggle: 5 submissions remaining today (0 made today, 0 in all)" in first.stdout
    assert again.returncode == 1 and again.stderr.strip() == (
        f"error: these bytes (SHA-1 {sha1_of(project.submission)[:12]}) were already submitted as {ref1} on "
        f"{time.strftime('%Y-%m-%d', time.gmtime())} (PENDING); Kaggle would score them the same. Nothing was "
        "uploaded; add --force to submit them again")
    assert forced.returncode == 0 and "warning: submitting bytes already submitted as" in forced.stdout
    assert "Kaggle: 4 submissions remaining today (1 made today, 1 in all)" in forced.stdout

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [f"submission {ref1} scored: public score {score}, rank 1 of 1 (top 100.0%)",
                         f"submission {ref2} scored: public score {score}, rank 1 of 1 (top 100.0%)",
                         f"added 1 submission(s) made outside kpipe to log.csv (no CV or MLflow run): {ref3}"]
    header, *rows = lines[3:]
    assert header.split() == ["ref", "date", "(UTC)", "status", "public", "private", "file", "message"]
    assert [row.split()[0] for row in rows] == [str(r) for r in reversed(refs)]  # newest first
    # Without -m the message names the commit (this folder is no git checkout) and the CV score.
    default = "kaggle-pipeline unknown-commit CV log-RMSE 0.1234 ± 0.0111"
    for row, message in zip(rows, ("by hand", "second", default), strict=True):
        assert row.split()[3:7] == ["COMPLETE", score, "-", "submission.csv"]
        assert row.rstrip().endswith(message)

    assert [(r.ref, r.origin, r.status, r.public_score, r.private_score) for r in synced.rows] == [
        (ref1, "kpipe", "COMPLETE", float(score), None), (ref2, "kpipe", "COMPLETE", float(score), None),
        (ref3, "kaggle", "COMPLETE", float(score), None)]
    assert synced.rows[0].file_sha1 == sha1_of(project.submission) and synced.rows[2].file_sha1 == ""
    # The private scores arrive with a later sync; the rank stays the one seen at the first score.
    assert final.returncode == 0, final.stderr
    assert f"submission {ref1} scored: public score {score}, private {float(score) + 0.01:.5f}" in final.stdout
    ended = SubmissionLog.read(project.submission_log)
    assert [r.private_score for r in ended.rows] == [pytest.approx(float(score) + 0.01)] * 3
    assert [r.rank for r in ended.rows] == [r.rank for r in synced.rows]


@pytest.mark.e2e
@pytest.mark.parametrize(("case", "says"), [
    ("401", "Kaggle refused the credentials from {home}/.kaggle/kaggle.json (401 Unauthorized): the key or "
            "token is wrong, expired or revoked. Create a new token at https://www.kaggle.com/settings/api."),
    ("403", "Kaggle would not let you submit (403): You must accept this competition's rules before you'll be "
            f"able to submit. Visit https://www.kaggle.com/competitions/{COMPETITION}/rules"),
    # A spent allowance is refused before anything is uploaded, in the client's own words.
    ("limit", "Kaggle takes no more submissions now: 0 submissions remaining today (0 made today, 0 in all). "
              "Nothing was uploaded"),
])
def test_kpipe_submit_turns_each_refusal_into_one_clear_line(home: Path, project: ProjectPaths,
                                                             case: str, says: str) -> None:
    write_credentials(home, username=USER, key="wrong" if case == "401" else KEY)
    with KaggleStandIn(api_keys={USER: KEY}, daily_limit=0 if case == "limit" else 5,
                       rules_accepted=case != "403") as standin:
        result = kpipe(standin, home, project, "submit", "-m", "m")
        assert not standin.submissions
        uploads = [r for r in standin.requests if r.path.endswith("/StartSubmissionUpload")]
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {says.format(home=home)}"]
    assert "submitted" not in result.stdout
    assert not project.submission_log.exists()  # nothing was sent, so nothing is logged
    if case == "limit":
        assert uploads == []


@pytest.mark.e2e
def test_a_token_kaggle_does_not_know_is_a_clear_message_not_the_clients_exit(
        home: Path, project: ProjectPaths) -> None:
    write_credentials(home, token="KGAT_revoked")
    with KaggleStandIn(tokens={TOKEN: USER}) as standin:
        result = kpipe(standin, home, project, "submissions")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: Kaggle did not accept the credentials from {home}/.kaggle/access_token (an unknown, "
        "expired or revoked token?). Create a new token at https://www.kaggle.com/settings/api.")
    assert "Authentication required" not in result.stdout  # the client's own help is not printed


# -- data.source: kaggle -------------------------------------------------------------------------


def _kaggle_source(project: ProjectPaths) -> None:
    params = yaml.safe_load(project.params.read_text())
    params["data"]["source"] = "kaggle"
    project.params.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.e2e
def test_the_kaggle_source_downloads_verifies_and_extracts_the_competition_files(
        home: Path, project: ProjectPaths) -> None:
    _kaggle_source(project)
    with KaggleStandIn(tokens={TOKEN: USER}) as standin:
        result = kpipe(standin, home, project, "fetch", KAGGLE_API_TOKEN=TOKEN)
        calls = [r.path.rsplit("/", 1)[-1] for r in standin.requests]
    assert result.returncode == 0, result.stdout + result.stderr
    assert sha1_of(project.raw_train) == HOUSE_PRICES["train"].sha1
    assert sha1_of(project.raw_test) == HOUSE_PRICES["test"].sha1
    assert f"extracted from Kaggle's {COMPETITION}.zip" in result.stderr
    assert "DownloadDataFiles" in calls
    assert sorted(p.name for p in project.raw_dir.iterdir()) == ["test.csv", "train.csv"]  # no zip left


@pytest.mark.e2e
def test_the_kaggle_source_says_where_to_accept_the_rules_and_writes_nothing(
        home: Path, project: ProjectPaths) -> None:
    _kaggle_source(project)
    with KaggleStandIn(tokens={TOKEN: USER}, rules_accepted=False) as standin:
        result = kpipe(standin, home, project, "fetch", KAGGLE_API_TOKEN=TOKEN)
    assert result.returncode == 1
    assert ("Kaggle would not let you download the competition files (403): You must accept this "
            "competition's rules before you'll be able to download files.") in result.stderr
    assert f"https://www.kaggle.com/competitions/{COMPETITION}/rules" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(project.raw_dir.iterdir()) == []


@pytest.mark.e2e
def test_the_documented_stand_in_command_submits_and_shows_the_leaderboard(project: ProjectPaths) -> None:
    """docs/submissions.md: `python tests/kaggle_standin.py -- bash -c 'kpipe submit && kpipe leaderboard'`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and k not in PROXY_VARS}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", TQDM_DISABLE="1")
    done = subprocess.run([str(BIN / "python"), str(ROOT / "tests" / "kaggle_standin.py"), "--", "bash", "-c",
                           "kpipe submit --poll-interval 0.1 && kpipe leaderboard"], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Kaggle: 5 submissions remaining today (0 made today, 0 in all)" in done.stdout
    assert "rank " in done.stdout and "of 41 (top " in done.stdout  # 40 other teams, and this one
    assert done.stdout.splitlines()[-3].split()[0] == str(SubmissionLog.read(project.submission_log).rows[0].ref)
