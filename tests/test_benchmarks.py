"""Every benchmark script the docs show starts as a script: `--help` prints its usage (a script
whose `main()` is never called prints nothing and measures nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))

# Runs each script given on its command line as `python <script> --help` would: as `__main__`, its
# folder first on sys.path, argv `<script> --help`; sys.path, argv and the environment are put back
# after each. One interpreter for all of them: the scripts import torch, MLflow and the pipeline
# (seconds each time), and a fresh process per script paid that once per script.
RUN_EACH_AS_MAIN = """
import contextlib, io, json, os, runpy, sys, traceback

results = {}
for script in sys.argv[1:]:
    path, argv, environ = list(sys.path), list(sys.argv), dict(os.environ)
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = [script, "--help"]
    sys.path.insert(0, os.path.dirname(script))
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    sys.path[:], sys.argv = path, argv
    os.environ.clear()
    os.environ.update(environ)
    results[os.path.basename(script)] = {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def usage_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each script's exit status, stdout and stderr for `--help`, from one fresh interpreter
    (a file, not `-c`: no current-directory entry on its sys.path that a script would not have)."""
    driver = tmp_path_factory.mktemp("usage") / "run_each_as_main.py"
    driver.write_text(RUN_EACH_AS_MAIN)
    done = subprocess.run([sys.executable, str(driver), *map(str, SCRIPTS)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_a_benchmark_script_runs_and_prints_its_usage(script: Path, usage_runs: dict[str, dict]) -> None:
    done = usage_runs[script.name]
    assert done["returncode"] == 0, done["stderr"]
    assert done["stdout"].startswith("usage:"), done["stdout"][:200]


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
