"""dvc.yaml tells the truth about the fashion and study stages.

A stage whose `deps` miss a module it imports is not re-run when that module changes, and
DVC then reports stale results as up to date. So the deps are checked against the imports
the code actually makes (transitively), and the params against the sections it loads.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ("fetch-fashion", "train-fashion", "study-linreg", "study-weight-decay", "study-init")


def module_file(module: str) -> Path | None:
    base = REPO / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def pipeline_imports(path: Path) -> set[str]:
    """Modules under `pipeline` that the file imports directly."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "pipeline"}
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] == "pipeline":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if module_file(f"{node.module}.{a.name}") is not None}
    return found


def transitive_files(module: str) -> set[str]:
    """Every file that running `python -m module` executes from this project."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # a module's packages run their __init__ first
            prefix = ".".join(parts[:i])
            path = module_file(prefix)
            if path is None:
                continue
            rel = str(path.relative_to(REPO))
            if rel not in seen:
                seen.add(rel)
                todo.extend(pipeline_imports(path))
    return seen


@pytest.fixture(scope="module")
def stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", STAGES)
def test_deps_are_exactly_the_modules_the_stage_imports(stages, stage):
    definition = stages[stage]
    module = re.search(r"python -m (\S+)", definition["cmd"]).group(1)
    code_deps = {d for d in definition["deps"] if d.endswith(".py")}
    assert code_deps == transitive_files(module)


@pytest.mark.parametrize("stage", STAGES)
def test_params_cover_every_section_the_stage_loads(stages, stage):
    definition = stages[stage]
    module = re.search(r"python -m (\S+)", definition["cmd"]).group(1)
    source = module_file(module).read_text()
    loaded = set(re.findall(r'load_section\([^,]+,\s*"(\w+)"', source))
    declared = {p.split(".")[0] for p in definition["params"]}
    assert loaded and loaded == declared


def test_train_stage_outputs_follow_project_paths(stages):
    from pipeline.paths import ProjectPaths

    paths = ProjectPaths(Path("."))
    definition = stages["train-fashion"]
    outputs = [next(iter(o)) if isinstance(o, dict) else o
               for o in definition["metrics"] + definition["plots"]]
    expected = [paths.fashion_metrics("M"), paths.fashion_curves("M"),
                paths.fashion_curves_png("M"), paths.fashion_predictions_png("M")]
    assert [o.replace("${item.model}", "M") for o in outputs] == [str(p) for p in expected]
    assert definition["matrix"]["model"] == "${fashion_train.models}"
