"""The documentation: the site builds strictly, the README stays an entrance, and measured figures
live only in docs/results/ (docs/development.md, "The rule on measured numbers")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
RESULTS = DOCS / "results"
README_LIMIT = 10_240  # bytes

# What a measured figure looks like. A setting, a definition or a fact of the data must not match:
# see EXEMPT and the examples in the tests below.
UNIT = r"(?:ms|s|secs?|seconds?|mins?|minutes?|h|hours?)"
NUMBER = r"\d+(?:\.\d+)?"
CELL = r"\|\s*\**[-+]?\d+\.\d+\**\s*(?=\|)"  # a table cell holding nothing but a decimal
MEASURED: dict[str, re.Pattern[str]] = {
    "a decimal with three or more places": re.compile(r"(?<![\w.])\d+\.\d{3,}(?!\w|\.\d)"),
    "a range or a comparison of decimals": re.compile(r"(?<![\w.])\d+\.\d+\s*(?:-|–|vs\.?)\s*\d+\.\d+(?!\w|\.\d)"),
    "a percentage": re.compile(r"(?<![\w.])\d+\.\d+\s*%|\b\d+\s*%\s+(?:of\s+the\s+(?:squared\s+)?error"
                               r"|too\s+(?:high|low)|faster|slower|better|worse)"),
    "a duration": re.compile(rf"(?<![\w.-]){NUMBER}(?:\s*(?:-|–|to)\s*{NUMBER})?\s*{UNIT}\b"),
    "a range of clock times": re.compile(r"\b\d+:\d{2}\s*[-–]\s*\d+:\d{2}\b"),
    "a speed-up ratio": re.compile(rf"(?<![\w.]){NUMBER}[x×](?!\w)|\b{NUMBER}\s+times\s+(?:faster|slower)\b"),
    "a rate": re.compile(
        rf"{NUMBER}\s*(?:trials?|epochs?|rows?|images?|steps?)\s*(?:/|per\s+)(?:min(?:ute)?|s(?:ec(?:ond)?)?|hour)\b"),
    "a count of tests": re.compile(r"\b\d+\s+tests\b"),
    "a memory size": re.compile(r"(?<![\w.])\d+\.\d+\s*(?:GiB|MiB|KiB|GB|MB|KB)\b"),
    "a load average": re.compile(
        r"\bload(?:\s+averages?)?\b[^\n|]{0,40}?(?<![\w.])(?:\d+\.\d+|\d+\s*[-–]\s*\d+)"),
    "a score": re.compile(
        r"\b(?:log-RMSE|RMSE|accuracy|acc|score[sd]?|AUC|logloss|MAE|CV)\b[^\d\n|]{0,15}?(?<![\w.])\d+\.\d+"
        r"|±\s*\d*\.\d+"),
    "a table row of decimals": re.compile(rf"{CELL}.*{CELL}"),
}
# Not measurements: a number right after `key: ` at the start of a line or in a YAML flow mapping, or
# after `key=` (a setting, unless the key names a result), after `>=` / `<=` (a target or a threshold),
# or a duration after a word that makes it a setting ("every 30 s", "within 3 s") or after a code span
# (`--poll-interval`, 5 s).
SETTING = re.compile(r"(?:(?:^\s*(?:-\s+)?|[{,]\s*)(?P<key>[\w.\[\]-]+):|(?P<assigned>[\w.\[\]-]+)\s*="
                     r"|>=|<=|≥|≤)\s*~?$")
RESULT_KEY = re.compile(r"score|rmse|acc|loss|cv|auc|mean|std|seconds|time|speed|ratio", re.IGNORECASE)
SET_DURATION = re.compile(r"(?:\b(?:every|within|after|each|per|interval|timeout|heartbeat|at most|up to)[,:]?\s+"
                          r"(?:an?\s+)?|§[,:=]\s*)$")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


def measured_figures(text: str) -> list[tuple[int, str, str]]:
    """(line number, what, the text) for every measured-looking figure of a Markdown text. Inline
    code spans (settings, keys, commands) are read as one mark, `§`; fenced blocks are read as they
    are (transcripts)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        plain = CODE_SPAN.sub("§", line)
        for what, pattern in MEASURED.items():
            for match in pattern.finditer(plain):
                before = plain[:match.start()]
                setting = SETTING.search(before)
                if setting and not RESULT_KEY.search(setting.group("key") or setting.group("assigned") or ""):
                    continue
                if what == "a duration" and SET_DURATION.search(before):
                    continue
                found.append((number, what, match.group(0).strip()))
    return found


def pages() -> list[Path]:
    """README.md and every page of docs/ but the generated results."""
    return [README, *(p for p in sorted(DOCS.rglob("*.md")) if not p.is_relative_to(RESULTS))]


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict`: every page in the nav, every relative link and anchor found."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_the_readme_is_an_entrance_not_a_manual() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes, over {README_LIMIT}: move detail into docs/"


def test_the_readme_keeps_the_ci_test_command() -> None:
    """CI runs the README's test command (.ci/run): `make test`, alone on a line of a code block."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", README.read_text(), flags=re.MULTILINE | re.DOTALL)
    assert any(line.strip() == "make test" for block in blocks for line in block.splitlines())


def test_the_readme_links_resolve() -> None:
    """The README is outside the site, so mkdocs checks none of its links: every relative one names
    an existing file, and an anchor one of that page's headings."""
    text = README.read_text()
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else README
        if not file.exists():
            broken.append(target)
        elif anchor:
            headings = re.findall(r"^#{1,6}\s+(.*?)\s*$", file.read_text(), flags=re.MULTILINE)
            if anchor not in {slugify(re.sub(r"[`*]", "", h), "-") for h in headings}:
                broken.append(target)
    assert not broken, f"README.md links to what is not there: {broken}"


def test_no_measured_figures_outside_the_results_pages() -> None:
    """A score, a time, a ratio, a count of passed trials or tests, a memory size or a load appears
    only in docs/results/, which the benchmark scripts write; every other page describes results in
    words and links there."""
    offences = [f"{page.relative_to(ROOT)}:{number}: {what}: {figure!r}"
                for page in pages() for number, what, figure in measured_figures(page.read_text())]
    assert not offences, ("measured figures outside docs/results/ (move them to a benchmark's results page "
                          "and describe them in words):\n" + "\n".join(offences))


# Lines of the README before the docs site existed, each holding a measured figure.
MEASUREMENTS = [
    "CPU machine it takes about 2 minutes from an empty clone (113-119 s measured): about a minute",
    "installing (longer when pip has to download torch), then about 50 seconds for the five stages.",
    "`make test` runs the whole suite, one pytest worker per core (pytest-xdist): about 390 tests in",
    "4 minutes on 2 cores from a fresh clone (4:08-4:18 measured; most of it the end-to-end `dvc repro`",
    "(`-m \"not e2e\"`) skips those: 364 tests in about a minute, for the edit-test loop.",
    "submission 40000001 scored: public score 0.38152 (CV 0.10932 ± 0.00824), rank 40 of 41 (top 97.6%)",
    "| seed 42 (chosen on) | 0.1092 | 0.1097 | -0.0005 | 0.0002 |",
    "| **issue 13's default: stacked blend of the 5 members below** | ensemble | **0.1097** ± 0.0067 |",
    "error lets them bend the fit for everyone else (measured here: linear CV 0.134 -> 0.128).",
    "IDOTRR, where many houses are commercially zoned (`C (all)`; log-RMSE 0.26 there), abnormal,",
    "Ratio 10.0x the trials per minute, and a better best value after the same minutes (-0.00007);",
    "s with the OOF library cold, 53 s warm (the eight members' CV read), the same submission bytes",
    "features; both include fitting the features of every fold): linear 1.2-2.4 s vs 6.7-7.9 s",
    "(3.3-5.7x over runs on this noisy machine), MLP 2.5-3.8 s vs 14.4-15.1 s (3.9-5.9x). The",
    "trials scored on 3 repeats of 5-fold CV (`tune.cv_repeats`), 6.5 trials/minute with one worker",
    "and 22.1 with `--n-jobs 2` (load average 1-2 from other work; the single worker ran first,",
    "ensemble's pyfunc model in about 5 s (MLflow loads it once to check the input example);",
    "`mlflow models serve --env-manager local` answered `/ping` 11-16 s after starting.",
    "| in-memory, 1 thread | 5.66 | 2 | 0.35 |",
    "Fashion-MNIST (default params, 10 epochs): test accuracy softmax 0.845 (scratch 0.846),",
    "MLP 0.889 (scratch 0.888), dropout MLP 0.888 (scratch 0.891). `benchmarks/fashion.py`: our",
    "idle machine (3.5-10.7x over runs) and 47.6 s with one core busy elsewhere (43x;",
    "dropout's random numbers dominate. `tests/test_cuda.py` passed there (10 tests: House Prices CV",
    "[team-demo] PostgreSQL ready in 0.9 s; Optuna storage postgresql+psycopg://kp@127.0.0.1:42917/optuna",
    "| pipeline.tabular cross_validate | 1,000,000 | 50 | 5 | 518.5 | 2.35 GiB | rmse 1.23498 | 4.77x |",
]

SETTINGS = [
    "dvc exp run -n lr-low -S train.lr=0.002 predict   # the pipeline with one param changed",
    "`cv.folds: 5` folds over all 1460 training rows; the default `train.lr: 0.0044` in params.yaml",
    "  lr: 0.0044",
    "    train.lr: {type: float, low: 0.0005, high: 0.02, log: true}",
    "  model.members[3].sklearn.svr.C = 2.4460832305599918",
    "A tracking server that does not answer its health check within 3 s is skipped for the whole run;",
    "Polls it (`--poll-interval`, 5 s) until scored, at most `--wait` seconds (300; 0 = do not wait).",
    "a running trial writes a heartbeat every 30 s. Demo settings: 3 folds, 10-40 epochs",
    "softmax >= 0.84, MLP >= 0.88 and dropout MLP >= 0.885, each scratch model within 0.01 of its twin",
    "Kaggle: 5 submissions remaining today (0 made today, 0 in all), rank <rank> of 41",
    "about 200 KB: `train.csv`, `test.csv`; SHA-1 585e9cc93e70b39160e7921475f9bcd7d31219ce",
    "kagglesdk 0.1.38 and kaggle 2.2.5 on 127.0.0.1, port 5001; years 1800-2500; 3 x 5 folds",
    "the norm of a product of 1..100 random 4x4 N(0,1) matrices; the 0x0000 magic number",
    "(`runtime.threads: 0` is the cores not busy elsewhere: CPU affinity minus the 1-minute load, at least 1)",
    "`torch==2.13.0`; a date 2026-12-02 05:10; `MLFLOW_HTTP_REQUEST_TIMEOUT=30`; lr 0.1 as in the book",
]


@pytest.mark.parametrize("line", MEASUREMENTS)
def test_the_check_finds_a_measured_figure(line: str) -> None:
    assert measured_figures(line), f"not flagged: {line!r}"


@pytest.mark.parametrize("line", SETTINGS)
def test_the_check_leaves_settings_alone(line: str) -> None:
    assert not measured_figures(line), f"flagged a setting: {measured_figures(line)}"


def prose_of_code(path: Path) -> str:
    """The docstrings and comments of a Python file, or the comments of a YAML file: the prose a
    reader of the code reads, one line of text per line of the file (the rest blank)."""
    import ast
    import io
    import tokenize

    source = path.read_text()
    lines = [""] * (source.count("\n") + 2)
    if path.suffix == ".py":
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                lines[token.start[0]] += token.string
        for node in ast.walk(ast.parse(source)):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                for offset, text in enumerate(body[0].value.value.splitlines()):
                    lines[body[0].lineno + offset] += text
    else:
        for number, line in enumerate(source.splitlines(), 1):
            if "#" in line:
                lines[number] = line[line.index("#"):]
    return "\n".join(lines[1:])


CODE_PROSE = sorted([*(ROOT / "pipeline").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py"),
                     *(ROOT / "scripts").glob("*.py"), ROOT / "params.yaml", ROOT / "dvc.yaml", ROOT / "Makefile"])


def test_no_measured_figures_in_docstrings_and_comments() -> None:
    """The same rule for the prose of the code: a docstring or a comment says why, and links to a
    results page for how much (a benchmark's docstring becomes its page's "What it measures")."""
    found = [f"{path.relative_to(ROOT)}:{number}: {what}: {text}"
             for path in CODE_PROSE for number, what, text in measured_figures(prose_of_code(path))]
    assert found == [], "\n".join(found)


def test_docs_pictures_copies_what_a_project_has_and_names_what_it_lacks(tmp_path: Path, capsys) -> None:
    """`scripts/docs_pictures.py PROJECT` (docs/development.md): the pictures a run left, shrunk,
    with where they came from; the ones it did not leave, with the command that makes them."""
    from PIL import Image

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import docs_pictures
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    project = tmp_path / "project"
    (project / "plots" / "house_prices").mkdir(parents=True)
    Image.new("RGB", (900, 600), "white").save(project / "plots" / "house_prices" / "cv_curves.png")
    out = tmp_path / "images"
    assert docs_pictures.main([str(project), "--out", str(out), "--max-width", "300"]) == 0
    with Image.open(out / "cv_curves.png") as copy:
        assert copy.size == (300, 200)
    assert (out / "sources.txt").read_text().startswith("cv_curves.png <- plots/house_prices/cv_curves.png, commit ")
    printed = capsys.readouterr().out
    assert "plots/house_prices/residuals.png: run `dvc repro residuals`" in printed
    assert sorted(p.name for p in out.iterdir()) == ["cv_curves.png", "sources.txt"]


def test_mkdocs_serve_shows_the_site_on_loopback() -> None:
    """`mkdocs serve`, as the README shows it (on a free port): the home page and a results page."""
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "mkdocs", "serve", "--no-livereload", "-a", f"127.0.0.1:{port}",
                               "-f", str(ROOT / "mkdocs.yml")], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
                    assert "kaggle-pipeline" in page.read().decode()
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mkdocs serve did not start"
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/results/leaderboard/", timeout=5) as page:
            assert "benchmarks/leaderboard.py" in page.read().decode()
    finally:
        server.terminate()
        server.wait(30)
