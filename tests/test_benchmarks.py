"""Every benchmark script the docs show starts as a script: `--help` prints its usage (a script
whose `main()` is never called prints nothing and measures nothing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_a_benchmark_script_runs_and_prints_its_usage(script: Path) -> None:
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:"), done.stdout[:200]


def test_a_results_page_holds_the_stamp_the_command_the_tables_and_the_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from _report import markdown_table, results_page

    monkeypatch.setattr(sys, "argv", ["bench.py", "--rows", "10", "--markdown", str(tmp_path / "page.md")])
    with results_page("benchmarks/bench.py", "A title", "What it does.\n\nRun: python benchmarks/bench.py",
                      tmp_path / "page.md") as page:
        print("measured 1.25 s")
        page.markdown(markdown_table(["setup", "seconds"], [["ours", "1.25"]], right=[1]))
    text = (tmp_path / "page.md").read_text()
    assert text.startswith("# A title\n\nWritten by `python benchmarks/bench.py --rows 10`")
    assert "commit " in text and " cores" in text and "load average" in text
    assert "What it does." in text and "Run:" not in text
    assert "| setup | seconds |\n| --- | ---: |\n| ours | 1.25 |" in text
    assert "## Output\n\n```text\nmeasured 1.25 s\n```" in text
    assert "measured 1.25 s" in capsys.readouterr().out  # shown as it happens, too


RESULTS = sorted(p for p in (ROOT / "docs" / "results").glob("*.md") if p.name != "index.md")


@pytest.mark.parametrize("page", RESULTS, ids=[p.name for p in RESULTS])
def test_every_results_page_was_written_by_the_benchmark_that_names_it(page: Path) -> None:
    """Measured numbers live only in pages a benchmark wrote (docs/development.md): each page names
    its script, and that script writes that very page by default."""
    import re

    match = re.search(r"^Written by `python (benchmarks/\w+\.py)[^`]*`", page.read_text(), re.MULTILINE)
    assert match, f"{page.name} does not say which benchmark wrote it"
    script = ROOT / match.group(1)
    assert script.exists(), match.group(1)
    assert f'PAGE = "docs/results/{page.name}"' in script.read_text()
