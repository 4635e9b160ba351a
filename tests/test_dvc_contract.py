"""The dvc.yaml contract: stages name real modules, list the code they import, and use real params."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def pipeline_imports(module: str, seen: set[str] | None = None) -> set[str]:
    """Files of every `pipeline.*` module `module` imports, transitively (itself and packages included)."""
    seen = set() if seen is None else seen
    path = _module_file(module)
    if path is None or module in seen:
        return set()
    seen.add(module)
    files = {str(path.relative_to(ROOT))}
    parts = module.split(".")
    for i in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
        files |= pipeline_imports(".".join(parts[:i]), seen)
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name == "pipeline" or name.startswith("pipeline."):
                files |= pipeline_imports(name, seen)
    return files


def _stage_module(cmd: str) -> str:
    words = cmd.split()
    assert words[:2] == ["python", "-m"], f"stage command should be `python -m pipeline...`: {cmd}"
    return words[2]


def _stage_params(stage: dict) -> list[str]:
    keys: list[str] = []
    for entry in stage.get("params", []):
        if isinstance(entry, str):
            keys.append(entry)
        else:  # {params_file: [keys]}
            keys.extend(k for listed in entry.values() for k in listed)
    return keys


def _deps(stage: dict) -> set[str]:
    return {d for d in stage.get("deps", []) if d.endswith(".py")}


def _iter_stages():
    for name, stage in DVC.items():
        if "foreach" in stage or "matrix" in stage:
            yield name, stage["do"] if "do" in stage else stage
        else:
            yield name, stage


@pytest.mark.parametrize(("name", "stage"), list(_iter_stages()), ids=[n for n, _ in _iter_stages()])
def test_stage_command_is_a_module_of_the_package(name: str, stage: dict) -> None:
    module = _stage_module(stage["cmd"])
    assert _module_file(module) is not None, f"{name}: {module} does not exist"


@pytest.mark.parametrize(("name", "stage"), list(_iter_stages()), ids=[n for n, _ in _iter_stages()])
def test_stage_deps_list_exactly_the_code_it_imports(name: str, stage: dict) -> None:
    imported = pipeline_imports(_stage_module(stage["cmd"]))
    listed = _deps(stage)
    assert imported - listed == set(), f"{name} imports but does not list: {sorted(imported - listed)}"
    assert listed - imported == set(), f"{name} lists code it does not import: {sorted(listed - imported)}"


@pytest.mark.parametrize(("name", "stage"), list(_iter_stages()), ids=[n for n, _ in _iter_stages()])
def test_every_param_key_a_stage_names_exists(name: str, stage: dict) -> None:
    for key in _stage_params(stage):
        node = PARAMS
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{name}: params key '{key}' not in params.yaml"
            node = node[part]


def test_every_stage_module_is_wired_into_dvc() -> None:
    modules = {_stage_module(stage["cmd"]) for _, stage in _iter_stages()}
    on_disk = {f"pipeline.stages.{p.stem}" for p in (ROOT / "pipeline" / "stages").glob("*.py") if p.stem != "__init__"}
    assert on_disk - modules == set(), f"stage modules missing from dvc.yaml: {sorted(on_disk - modules)}"


@pytest.mark.parametrize(("name", "stage"), list(_iter_stages()), ids=[n for n, _ in _iter_stages()])
def test_every_params_section_a_stage_loads_is_declared(name: str, stage: dict) -> None:
    source = _module_file(_stage_module(stage["cmd"])).read_text()
    loaded = set(re.findall(r'load_section\(\s*paths\.params,\s*"([\w.-]+)"', source))
    declared = {k.split(".")[0] for k in _stage_params(stage)}
    assert loaded <= declared, f"{name} reads params sections {sorted(loaded - declared)} not declared in dvc.yaml"
