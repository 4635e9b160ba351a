"""Results pages: every benchmark writes its own page of docs/results/ (`--markdown PATH`), whole.

So that no measured number in the docs is typed by hand, a page holds only what the run that
measured it wrote: when (date, wall time), on which code (the commit, `-dirty` if tracked files
differed from it; docs/ may), on what machine (CPU model, cores, memory, the load average at the start and
at the end), the command, the script's own description, its tables, and its printed output
verbatim. Rerun the script to refresh a page; never edit one.

    with results_page(__file__, "Title", __doc__, args.markdown) as page:
        print(...)                  # shown as usual, and kept for the page's "Output" section
        page.markdown(table_text)   # a Markdown section of the page (a table, a picture's link)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


CODE = ("pipeline", "benchmarks", "params.yaml", "pyproject.toml")  # what a measurement depends on


def commit() -> str:
    """The short commit of the checkout, `-dirty` when the code or params differ from it (an edited
    doc page does not change a measurement)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no", "--", *CODE) else "")


def machine() -> str:
    """CPU model, cores and memory of this machine."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        total = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        kib = int(total.split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    return f"{model}, {os.cpu_count()} cores{memory}"


def _load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    """A GitHub-flavoured Markdown table; `right`: the columns to align right (numbers)."""
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


class _Tee(io.TextIOBase):
    """Writes to the real stdout and keeps a copy."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class ResultsPage:
    def __init__(self, script: str, title: str, doc: str) -> None:
        self.script, self.title, self.doc = Path(script).name, title, doc
        self.sections: list[str] = []
        self.output = ""
        # At the start: the code the run measures (a commit made meanwhile is not what ran).
        self.started, self.load_start, self.commit = time.monotonic(), _load(), commit()

    def markdown(self, text: str) -> None:
        self.sections.append(text.strip())

    def render(self, argv: Sequence[str]) -> str:
        command = " ".join(["python", f"benchmarks/{self.script}", *argv])
        minutes = (time.monotonic() - self.started) / 60
        about = "\n".join(line for line in self.doc.strip().splitlines() if not line.startswith(("Run:", "     [")))
        parts = [f"# {self.title}",
                 f"Written by `{command}`: rerun it to refresh this page; never edit it by hand.",
                 f"{datetime.date.today().isoformat()}, commit {self.commit}, {machine()}; load average (1/5/15 min) "
                 f"{self.load_start} at the start and {_load()} at the end; {minutes:.1f} minutes in all.",
                 "## What it measures", about.strip(), *self.sections]
        if self.output.strip():
            parts += ["## Output", f"```text\n{self.output.rstrip()}\n```"]
        return "\n\n".join(parts) + "\n"


def _argv_without(flag: str) -> list[str]:
    """The command's arguments, without `flag` and its value (the page's own path)."""
    argv, out, skip = sys.argv[1:], [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(f"{flag}="):
            out.append(arg)
    return out


@contextlib.contextmanager
def results_page(script: str, title: str, doc: str, path: Path | None) -> Iterator[ResultsPage]:
    """Everything printed in the block is shown and kept; with `path`, the page is written there
    when the block ends without an error."""
    page = ResultsPage(script, title, doc or "")
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield page
    page.output = tee.copy.getvalue()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page.render(_argv_without("--markdown")))
        print(f"wrote {path}")


def add_markdown_argument(parser: object, default: str) -> None:
    parser.add_argument("--markdown", type=Path, default=None,
                        help=f"also write this benchmark's results page there (the docs' one: {default})")


def add_only_argument(parser: argparse.ArgumentParser, tables: tuple[str, ...] | list[str]) -> None:
    """`--only a,b`: the subset of `tables` to run (default: all of them)."""
    parser.add_argument("--only", default=",".join(tables), help=f"comma-separated subset of {', '.join(tables)}")


def chosen_tables(parser: argparse.ArgumentParser, only: str, tables: tuple[str, ...] | list[str]) -> list[str]:
    """The tables `--only` names, in its order; an unknown name is the parser's usage error."""
    chosen = [t for t in only.split(",") if t]
    unknown = set(chosen) - set(tables)
    if unknown:
        parser.error(f"unknown table(s) {', '.join(sorted(unknown))}")
    return chosen

