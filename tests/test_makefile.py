"""The Makefile's own promises, on a copy of it with stand-ins for the slow parts.

`make` sets up .venv and runs the pipeline; what it prints at the end must count both, since a
user who typed `make` waited for both. The stand-ins are a `python3` whose `-m venv` takes two
seconds and lays out a venv holding a `dvc` that does nothing, so the test is about the
Makefile's arithmetic, not about installing anything.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from conftest import ROOT

FAKE_PYTHON = """#!/bin/sh
# -m venv DIR: two seconds, then DIR/bin/{python,dvc}; -m pip ...: nothing.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  sleep 2
  mkdir -p "$3/bin"
  cp "$0" "$3/bin/python"
  printf '#!/bin/sh\\necho "Running stage fetch"\\n' > "$3/bin/dvc"
  chmod +x "$3/bin/python" "$3/bin/dvc"
fi
exit 0
"""


def test_done_in_counts_the_set_up_too(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Makefile", project / "Makefile")
    (project / "pyproject.toml").write_text("")
    python = tmp_path / "python3"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    done = subprocess.run(["make", "house-prices", f"PYTHON={python}", f"VENV={project / '.venv'}"], cwd=project,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Running stage fetch" in done.stdout
    seconds = int(re.search(r"make: done in (\d+) s", done.stdout).group(1))
    assert seconds >= 2, done.stdout  # the venv's two seconds are in it
