"""Copy the pipeline's own pictures from a project folder into the docs (docs/images/).

The pictures are DVC outputs (git-ignored, in DVC's cache), so the documentation keeps its own
copies, made by this script after a run:

    git clone /path/to/kaggle-pipeline /tmp/docs-run && cd /tmp/docs-run && make
    dvc repro residuals && make fashion
    python tests/kaggle_standin.py -- bash -c 'kpipe submit && kpipe leaderboard'   # with .venv/bin on PATH
    python scripts/docs_pictures.py /tmp/docs-run          # from this checkout

A picture the project does not have is listed with the command that makes it, and the copy in
docs/images/ (if any) is left as it is. Each copy is shrunk to at most --max-width pixels and
stored with a 256-colour palette where that is smaller (matplotlib's flat colours survive it), so
the committed PNGs stay small. docs/images/sources.txt records where each copy came from: the project's commit
and the date of the copy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"

# docs/images/<name> <- <project>/<source>, and the command that makes the source.
PICTURES: tuple[tuple[str, str, str], ...] = (
    ("cv_curves.png", "plots/house_prices/cv_curves.png", "dvc repro cv"),
    ("train_curves.png", "plots/house_prices/train_curves.png", "dvc repro train"),
    ("residuals.png", "plots/house_prices/residuals.png", "dvc repro residuals"),
    ("leaderboard.png", "plots/leaderboard.png", "kpipe leaderboard (after kpipe submit)"),
    ("fashion_mlp_curves.png", "plots/fashion/pictures/mlp_curves.png", "dvc repro train-fashion@mlp"),
    ("fashion_predictions.png", "plots/fashion/pictures/dropout_predictions.png", "dvc repro train-fashion@dropout"),
    ("study_linreg.png", "plots/studies/linreg.png", "dvc repro study-linreg"),
    ("study_weight_decay.png", "plots/studies/weight_decay.png", "dvc repro study-weight-decay"),
    ("study_init.png", "plots/studies/init.png", "dvc repro study-init"),
)


def commit_of(project: Path) -> str:
    """The project's short commit, `-dirty` when tracked files differ from it; `unknown` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=project, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def shrink(source: Path, target: Path, max_width: int) -> None:
    """`source` at most `max_width` wide, written to `target` as the smallest of a 256-colour palette
    PNG (plots: flat colours), a full-colour one and, when no scaling was needed, the file itself."""
    with Image.open(source) as image:
        picture = image.convert("RGB")
    encoded = []
    if picture.width > max_width:
        height = round(picture.height * max_width / picture.width)
        picture = picture.resize((max_width, height), Image.Resampling.LANCZOS)
    else:
        encoded.append(source.read_bytes())  # matplotlib's own file, when it is the smallest
    for candidate in (picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE),
                      picture):
        buffer = io.BytesIO()
        candidate.save(buffer, format="PNG", optimize=True)
        encoded.append(buffer.getvalue())
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(min(encoded, key=len))
    tmp.replace(target)


def read_sources(path: Path) -> dict[str, str]:
    """sources.txt as {picture: its line}."""
    if not path.exists():
        return {}
    return {line.split(" ", 1)[0]: line for line in path.read_text().splitlines() if line.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path, help="a project folder after `make` (a clone of this repository)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the copies go (default: docs/images)")
    parser.add_argument("--max-width", type=int, default=1600, help="pixels; wider pictures are scaled down")
    args = parser.parse_args(argv)
    project = args.project.resolve()
    if not project.is_dir():
        print(f"error: {project} is not a folder", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    sources = read_sources(args.out / "sources.txt")
    commit, today = commit_of(project), dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    copied, missing = 0, []
    for name, relative, command in PICTURES:
        source = project / relative
        if not source.is_file():
            missing.append(f"  {relative}: run `{command}` in {project}")
            continue
        target = args.out / name
        shrink(source, target, args.max_width)
        sources[name] = f"{name} <- {relative}, commit {commit}, copied {today}"
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target} "
              f"({target.stat().st_size // 1024} KiB) <- {relative}")
        copied += 1
    (args.out / "sources.txt").write_text("".join(line + "\n" for _, line in sorted(sources.items())))
    if missing:
        print("not in the project (the docs keep their current copies):\n" + "\n".join(missing))
    return 0 if copied else 1


if __name__ == "__main__":
    raise SystemExit(main())
