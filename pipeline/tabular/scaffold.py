"""`kpipe new NAME --from PATH`: a ready project for a competition this package has never seen.

The folder is built beside its final place and renamed into it only when everything worked
(files read, facts inferred, git and DVC initialised), so a failure leaves nothing behind.
The project uses the installed `kaggle-pipeline` as its library: its dvc.yaml runs
`python -m pipeline.stages.tabular STAGE`, with the same stages, tracking and submission
checks as House Prices.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.common.download import FetchError, safe_members, sha1_of
from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_dir
from pipeline.common.paths import ProjectPaths
from pipeline.common.readers import read_csv_table
from pipeline.tabular.competition import Competition, write_competition
from pipeline.tabular.infer import CannotInfer, find_files, infer_competition
from pipeline.tabular.params import DEFAULTS
from pipeline.tabular.schema import infer_schema, write_schema


class ProjectExists(PipelineError, FileExistsError):
    """`kpipe new` never writes into an existing folder."""


@dataclass(frozen=True)
class NewOptions:
    name: Path
    source: Path | None = None
    target: str | None = None
    id_column: str | None = None
    task: str | None = None
    metric: str | None = None
    competition: str | None = None  # Kaggle's slug; without --from, the files are downloaded
    max_bytes: int = int(DEFAULTS["data"]["max_file_mb"]) << 20


def new_project(options: NewOptions) -> Competition:
    """Create the project; return its competition (what was inferred)."""
    target = options.name.resolve()
    if target.exists():
        raise ProjectExists(f"{options.name} already exists: `kpipe new` creates a new folder; choose another name")
    if options.source is None and options.competition is None:
        raise CannotInfer("give --from PATH (Kaggle's zip or a folder of its CSVs) or --competition SLUG "
                          "(downloaded with the Kaggle client)")
    slug = options.competition or target.name
    with atomic_dir(target) as tmp:
        paths = ProjectPaths(tmp)
        _bring_data(options, slug, paths.external_dir)
        files = find_files(paths.external_dir)
        sha1 = {p.name: sha1_of(p) for p in (files.train, files.test, files.sample)}
        train, test, sample = (read_csv_table(p, max_bytes=options.max_bytes)
                               for p in (files.train, files.test, files.sample))
        competition = infer_competition(slug, train, test, sample, sha1, target=options.target,
                                        id_column=options.id_column, task=options.task, metric=options.metric)
        write_schema(infer_schema(train, test, id_column=competition.id_column, target=competition.target),
                     paths.schema_file)
        write_competition(competition, paths.competition_file)
        params = {**DEFAULTS, "data": {**DEFAULTS["data"], "source": "local" if options.source else "kaggle"}}
        (tmp / "params.yaml").write_text(PARAMS_HEADER + yaml.safe_dump(params, sort_keys=False))
        (tmp / "dvc.yaml").write_text(dvc_yaml(competition))
        (tmp / ".gitignore").write_text(GITIGNORE)
        (tmp / "README.md").write_text(readme(competition, target.name))
        _init_repositories(tmp)
    return competition


def _bring_data(options: NewOptions, slug: str, external: Path) -> None:
    """Kaggle's CSVs into data/external: from a zip, a folder, or the Kaggle client."""
    external.mkdir(parents=True)
    source = options.source
    if source is None:
        from pipeline.common.kaggle_api import download_competition_zip

        with tempfile.TemporaryDirectory() as tmp:
            _extract_csvs(download_competition_zip(Path(tmp), slug), external)
        return
    if not source.exists():
        raise CannotInfer(f"--from {source}: no such file or folder")
    if source.is_dir():
        csvs = sorted(p for p in source.rglob("*.csv") if p.is_file())
        if not csvs:
            raise CannotInfer(f"--from {source}: the folder holds no CSV file (expected Kaggle's train.csv, "
                              "test.csv and sample submission)")
        for csv in csvs:
            shutil.copyfile(csv, external / csv.name)
        return
    if not zipfile.is_zipfile(source):
        raise CannotInfer(f"--from {source}: neither a folder nor a zip archive")
    _extract_csvs(source, external)


def _extract_csvs(archive: Path, external: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in safe_members(zf) if m.lower().endswith(".csv")]
        if not members:
            raise CannotInfer(f"{archive} holds no CSV file (expected Kaggle's train.csv, test.csv and "
                              "sample submission)")
        for member in members:
            with zf.open(member) as src, (external / Path(member).name).open("wb") as out:
                shutil.copyfileobj(src, out)


def _init_repositories(folder: Path) -> None:
    """`git init` and `dvc init` (DVC needs the git repository)."""
    for command in (["git", "init", "--quiet"], [sys.executable, "-m", "dvc", "init", "--quiet"]):
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise FetchError(f"`{' '.join(command[-3:])}` failed in the new project: "
                             f"{(done.stderr or done.stdout).strip()[:500]}")


PARAMS_HEADER = """\
# What you tune (`dvc exp run -S train.lr=0.01`). Members: `kind` (lightgbm, catboost, sklearn,
# linear, mlp) plus dotted overrides of the shared sections, e.g. {kind: mlp, train.hidden: [256, 128]}.
# `runtime` says how to run (threads, device), never what to compute.
"""

GITIGNORE = """\
# Kaggle's files stay out of git (the competition's rules); fetch verifies them by SHA-1.
/data/external/
/mlflow.db
/mlruns/
/.kpipe/
__pycache__/
# `kpipe predict --model-uri` files (submissions/log.csv is committed).
/submissions/submission-*.csv
/plots/leaderboard.png
/submissions/.log.csv.lock
"""

EXPERIMENT_PARAMS = ["base", "features", "cv", "train", "sklearn", "lightgbm", "catboost", "model"]


def dvc_yaml(competition: Competition) -> str:
    """The project's stages: the same chain as House Prices (fetch -> validate -> cv -> train -> predict)."""
    hook = [f"{competition.module.replace('.', '/')}.py"] if competition.module else []
    cmd = "python -m pipeline.stages.tabular"
    stages = {
        "fetch": {"desc": "Kaggle's files into data/raw, each checked against its SHA-1 in competition.yaml.",
                  "cmd": f"{cmd} fetch", "deps": ["competition.yaml"], "params": ["data"],
                  "outs": [{"data/raw/train.csv": {"persist": True}}, {"data/raw/test.csv": {"persist": True}},
                           {"data/raw/sample_submission.csv": {"persist": True}}]},
        "validate": {"desc": "The raw tables checked against schema.yaml (pandera); typed copies and a report.",
                     "cmd": f"{cmd} validate",
                     "deps": ["data/raw/train.csv", "data/raw/test.csv", "schema.yaml", "competition.yaml"],
                     "params": ["data.max_file_mb"],
                     "outs": ["data/interim/train.parquet", "data/interim/test.parquet", "reports/validation.json"]},
        "cv": {"desc": f"k-fold CV {competition.metric} of the blend and each member; out-of-fold predictions.",
               "cmd": f"{cmd} cv",
               "deps": ["data/interim/train.parquet", "data/interim/test.parquet", "competition.yaml", *hook],
               "params": EXPERIMENT_PARAMS,
               "outs": ["data/processed/oof_predictions.csv"],
               "metrics": [{"metrics/competition/cv.json": {"cache": False}}],
               "plots": [{"plots/competition/cv.png": {"cache": False}}]},
        "train": {"desc": "Every member fit on all training rows; the blend saved under models/blend.",
                  "cmd": f"{cmd} train",
                  "deps": ["data/interim/train.parquet", "metrics/competition/cv.json", "competition.yaml", *hook],
                  "params": EXPERIMENT_PARAMS, "outs": ["models/blend"],
                  "metrics": [{"metrics/competition/train.json": {"cache": False}}]},
        "predict": {"desc": "submissions/submission.csv as the sample submission lays it out, checked.",
                    "cmd": f"{cmd} predict",
                    "deps": ["data/interim/test.parquet", "models/blend", "competition.yaml", *hook],
                    "outs": ["submissions/submission.csv"]},
        "residuals": {"desc": "Error report of cv's out-of-fold predictions: worst rows, loss by group.",
                      "cmd": f"{cmd} residuals",
                      "deps": ["data/interim/train.parquet", "data/processed/oof_predictions.csv", "competition.yaml",
                               *hook],
                      "params": ["residuals"],
                      "outs": [{"plots/competition/residuals": {"cache": False}}],
                      "metrics": [{"metrics/competition/residuals.json": {"cache": False}}],
                      "plots": [{"plots/competition/residuals.png": {"cache": False}}]},
    }
    header = ("# Written by `kpipe new`: the generic stages of kaggle-pipeline (installed in the active\n"
              "# environment). `dvc repro` runs them all; metrics and the CV picture are committed.\n")
    # The submission log (`kpipe submit`): CV against the public score, `dvc plots show`.
    plots = [{"submissions/log.csv": {"template": "scatter", "x": "cv_mean", "y": "public_score",
                                      "title": f"{competition.slug}: CV against the public leaderboard"}}]
    return header + yaml.safe_dump({"stages": stages, "plots": plots}, sort_keys=False, width=120)


def readme(competition: Competition, name: str) -> str:
    return f"""# {name}

A [kaggle-pipeline](https://github.com/) project for the Kaggle competition `{competition.slug}`:
{competition.task}, scored by `{competition.metric}`, target `{competition.target}`, id `{competition.id_column}`.

```bash
dvc repro                      # fetch -> validate -> cv -> train -> predict: submissions/submission.csv
kpipe runs                     # every CV run in MLflow, best first (or: mlflow ui --backend-store-uri sqlite:///mlflow.db)
dvc exp run -S train.lr=0.01   # change a param, then compare: dvc exp show --only-changed --drop '.*/'
kpipe submit                   # check the file, send it with the Kaggle client, wait for the score
kpipe leaderboard              # every submission's CV against its public score (submissions/log.csv)
```

- `competition.yaml`: the competition's facts (files and SHA-1s, columns, task, metric, the
  submission's layout); `schema.yaml`: the pandera schema inferred from the data. Tighten it.
- `params.yaml`: features, members (`model.members`) and their settings.
- `submissions/log.csv`: every Kaggle submission with its score, CV, commit and MLflow run;
  commit it with the code.
- Kaggle's files are in `data/external/` (git-ignored); a teammate fetches them with
  `dvc exp run -S data.source=kaggle` or from a DVC remote.

Start with `git add . && git commit -m "kpipe new"`.
"""
