"""The leaderboard comes back: every Kaggle score in the committed submission log beside the CV,
the commit, the DVC experiment and the MLflow runs that made the file; CV against the public
score; submissions spent only on purpose.

End to end, through `dvc repro`, `dvc exp run`, the unmodified Kaggle client and the stand-in:
tests/test_documented_new_competition.py (two submissions of a new competition, their scores in
the log, MLflow and `kpipe leaderboard`) and tests/test_kaggle.py (refusals, the allowance, the
sync of pending rows and of submissions made outside kpipe).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.kaggle_api import LeaderboardEntry, SubmissionLimits
from pipeline.submissions.leaderboard import leaderboard_report, standing
from pipeline.submissions.log import LogRow, SubmissionLog, SubmissionLogError, change_log, read_log
from pipeline.submissions.source import ModelSource
from pipeline.submissions.spend import NoSubmissionsLeft, cv_warning, refuse_without_allowance

TOKEN, USER = "KGAT_leaderboard_0123456789", "alice"
DATE = "2026-12-01T10:00:00+00:00"


def row(ref: int, cv: float | None, public: float | None, std: float = 0.01, status: str = "COMPLETE") -> LogRow:
    return LogRow(ref=ref, date=DATE, competition="c", status=status, file="submissions/submission.csv",
                  file_sha1=f"{ref:040x}", metric="rmse", cv_mean=cv, cv_std=std, public_score=public)


# -- the log ----------------------------------------------------------------------------------


def test_the_log_keeps_every_field_of_every_row(tmp_path: Path) -> None:
    path = tmp_path / "submissions" / "log.csv"
    first = row(1, 0.12, 0.13)
    first.rank, first.teams, first.percentile, first.mlflow_run_id = 3, 40, 7.5, "a" * 32
    second = row(2, 0.11, None, status="PENDING")
    second.message = 'kaggle-pipeline 1a2b3c4 "quoted", with a comma'
    change_log(path, lambda log: log.rows.extend([first, second]))
    assert read_log(path).rows == [first, second]


def test_a_log_edited_into_nonsense_is_one_clear_error_and_is_left_as_it_is(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "submissions" / "log.csv"
    change_log(path, lambda log: log.rows.extend([row(1, 0.12, 0.13), row(2, 0.11, 0.12)]))
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, "public_score"] = "about 0.13"
    frame.loc[1, "status"] = "DONE"
    frame.loc[1, "ref"] = "1"
    frame.to_csv(path, index=False)
    edited = path.read_bytes()

    with pytest.raises(SubmissionLogError) as caught:
        change_log(path, lambda log: log.rows.append(row(3, 0.1, None)))
    message = str(caught.value)
    assert message.startswith(f"{path} is not a submission log kpipe can read: ")
    for fault in ("line 2, public_score: 'about 0.13'", "line 3, status: 'DONE'",
                  "line 3, ref: '1' fails field_uniqueness"):
        assert fault in message, message
    assert "git checkout log.csv" in message
    assert path.read_bytes() == edited  # never overwritten

    # Every command that reads the log says the same, in one line, and writes nothing.
    for name in ("params.yaml", "dvc.yaml"):  # the folder is a project
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["leaderboard"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {message}"]
    assert path.read_bytes() == edited


def test_a_log_with_other_columns_says_which(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("ref,date,score\n1,2026-12-01,0.1\n")
    with pytest.raises(SubmissionLogError, match="the header lacks competition, status"):
        read_log(path)


# -- spending submissions ---------------------------------------------------------------------------


def test_no_allowance_refuses_in_the_clients_words() -> None:
    assert refuse_without_allowance(SubmissionLimits(1, 9, 4, False)) == (
        "Kaggle: 4 submissions remaining today (1 made today, 9 in all)")
    with pytest.raises(NoSubmissionsLeft, match=r"0 submissions remaining today \(limited by lifetime cap\)"):
        refuse_without_allowance(SubmissionLimits(0, 100, 0, True))


def test_a_weaker_cv_is_flagged_only_beyond_the_fold_noise() -> None:
    log = SubmissionLog(Path("log.csv"), [row(1, 0.120, 0.13, std=0.004), row(2, 0.125, 0.14, std=0.004)])

    def source(cv: float, std: float = 0.004) -> ModelSource:
        return ModelSource("c", "rmse", cv_mean=cv, cv_std=std)

    assert cv_warning(log, source(0.123), greater_is_better=False) is None  # within 0.004 of the best
    assert cv_warning(log, source(0.130), greater_is_better=False) == (
        "warning: this model's CV rmse 0.13000 is worse than submission 1's 0.12000 by 0.01000, more than the "
        "fold noise (0.00400); submitting it anyway")
    assert cv_warning(log, source(0.100), greater_is_better=True) is not None  # higher is better: 0.125 wins
    assert cv_warning(log, None, greater_is_better=False) is None


# -- CV against the leaderboard ------------------------------------------------------------------------


def test_standing_counts_the_other_teams_strictly_better() -> None:
    board = [LeaderboardEntry("a", 0.10), LeaderboardEntry("b", 0.12), LeaderboardEntry("us", 0.11),
             LeaderboardEntry("c", 0.13)]
    place = standing(board, 0.12, greater_is_better=False, team="us")
    assert (place.rank, place.teams, place.percentile) == (2, 4, 50.0)  # only "a" is better; a tie is not
    assert standing(board, 0.12, greater_is_better=True, team="us").rank == 2  # only "c"
    assert standing([], 0.12, greater_is_better=False) is None


def test_the_same_files_scores_again_make_no_fit_and_no_error() -> None:
    """`kpipe submit --force` of one model's file twice: two scored points of one CV, nothing to fit."""
    report = leaderboard_report(SubmissionLog(Path("log.csv"), [row(1, 0.12, 0.13), row(2, 0.12, 0.13)]), "rmse")
    assert report.slope is None
    assert report.summary() == "2 scored submissions, all of one CV score: a fit needs submissions of different " \
                               "CV scores"


def test_the_report_fits_public_against_cv_and_ranks_them() -> None:
    log = SubmissionLog(Path("log.csv"), [row(1, 0.10, 0.11), row(2, 0.12, 0.13), row(3, 0.14, 0.16),
                                          row(4, 0.13, None, status="PENDING"), row(5, None, 0.2)])
    report = leaderboard_report(log, "rmse")
    assert list(report.points["ref"]) == [1, 2, 3]  # scored, with a CV
    assert report.slope == pytest.approx(1.25) and report.intercept == pytest.approx(-1 / 60)
    assert report.spearman == pytest.approx(1.0)
    assert list(report.table["ref"]) == [5, 4, 3, 2, 1]  # newest first
    assert report.summary().splitlines() == [
        "over 3 scored submissions: public = -0.01667 + 1.250 x CV; Spearman rank correlation 1.00, Pearson 0.99",
        "1 submission(s) still PENDING: `kpipe submissions` fetches their scores"]
