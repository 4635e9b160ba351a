"""The dvc.yaml contract: stages name real modules, depend on the code they import, and use real params.

A stage's code deps are its own module, `pipeline/__init__.py`, `pipeline/stages/__init__.py` and
the package folders it imports from: a module that gains an import inside those folders needs no
edit of dvc.yaml, and a new folder is named by the test below."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

from pipeline.common.params import RUNTIME, StageParams

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


def _code_deps(stage: dict) -> set[str]:
    return {d for d in stage.get("deps", []) if d.startswith("pipeline")}


def covers(dep: str, file: str) -> bool:
    """A dep covers a file when it is that file or a folder holding it."""
    return file == dep or file.startswith(dep.rstrip("/") + "/")


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


def code_mismatch(imported: set[str], listed: set[str]) -> tuple[set[str], set[str]]:
    """(imported files no dep covers, deps that cover no imported file)."""
    uncovered = {f for f in imported if not any(covers(d, f) for d in listed)}
    unused = {d for d in listed if not any(covers(d, f) for f in imported)}
    return uncovered, unused


@pytest.mark.parametrize(("name", "stage"), list(_iter_stages()), ids=[n for n, _ in _iter_stages()])
def test_stage_deps_cover_exactly_the_code_it_imports(name: str, stage: dict) -> None:
    module = _stage_module(stage["cmd"])
    listed = _code_deps(stage)
    uncovered, unused = code_mismatch(pipeline_imports(module), listed)
    assert uncovered == set(), f"{name} imports code no dep covers: {sorted(uncovered)}"
    assert unused == set(), f"{name} depends on code it does not import: {sorted(unused)}"
    # Its own module is named as a file: a folder dep on pipeline/stages would rerun every stage
    # whenever any one of them changes.
    assert "pipeline/stages" not in listed and _module_file(module).relative_to(ROOT).as_posix() in listed


def test_the_code_contract_catches_a_new_package_and_a_needless_one() -> None:
    imported = {"pipeline/stages/cv.py", "pipeline/common/io.py", "pipeline/tuning/space.py"}
    listed = {"pipeline/stages/cv.py", "pipeline/common", "pipeline/fashion"}
    assert code_mismatch(imported, listed) == ({"pipeline/tuning/space.py"}, {"pipeline/fashion"})


def test_python_caches_are_not_part_of_a_folder_dep() -> None:
    """A folder dep's hash must not change when an interpreter writes bytecode into it."""
    assert "__pycache__/" in (ROOT / ".dvcignore").read_text().splitlines()


@pytest.mark.parametrize(("name", "stage"), list(_iter_stages()), ids=[n for n, _ in _iter_stages()])
def test_every_param_key_a_stage_names_exists(name: str, stage: dict) -> None:
    for key in _stage_params(stage):
        node = PARAMS
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{name}: params key '{key}' not in params.yaml"
            node = node[part]


def _generated_stages() -> dict[str, dict]:
    """The stages of the dvc.yaml `kpipe new` writes for a competition project."""
    from pipeline.tabular.competition import Competition, SubmissionFormat
    from pipeline.tabular.scaffold import dvc_yaml

    competition = Competition("c", "id", "y", "regression", "rmse", SubmissionFormat(("id", "y"), "values"), {})
    return yaml.safe_load(dvc_yaml(competition))["stages"]


def test_every_stage_module_is_wired_into_dvc() -> None:
    """Into this repository's dvc.yaml, or into the one `kpipe new` writes (the generic stages)."""
    modules = {_stage_module(stage["cmd"]) for _, stage in _iter_stages()}
    modules |= {_stage_module(stage["cmd"]) for stage in _generated_stages().values()}
    on_disk = {f"pipeline.stages.{p.stem}" for p in (ROOT / "pipeline" / "stages").glob("*.py") if p.stem != "__init__"}
    assert on_disk - modules == set(), f"stage modules missing from dvc.yaml: {sorted(on_disk - modules)}"


def _leaf_keys(params: dict, names: set[str]) -> set[str]:
    """Dotted leaf keys of params.yaml under each name (a section or a key): what DVC hashes."""
    leaves: set[str] = set()
    for name in names:
        node = params
        for part in name.split("."):
            node = node[part]
        stack = [(name, node)]
        while stack:
            key, value = stack.pop()
            if isinstance(value, dict):
                stack.extend((f"{key}.{k}", v) for k, v in value.items())
            else:
                leaves.add(key)
    return leaves


def param_mismatch(stage: dict, module: object) -> tuple[set[str], set[str]]:
    """(read but not declared, declared but not read), as dotted leaf keys of params.yaml."""
    params = StageParams(ROOT / "params.yaml")
    module.load_params(params)
    read = _leaf_keys(PARAMS, params.read)
    declared = _leaf_keys(PARAMS, set(_stage_params(stage)))
    return read - declared, declared - read


def _module(stage: dict) -> object:
    return importlib.import_module(_stage_module(stage["cmd"]))


@pytest.mark.parametrize(("name", "stage"), list(_iter_stages()), ids=[n for n, _ in _iter_stages()])
def test_every_stage_declares_exactly_the_params_it_reads(name: str, stage: dict) -> None:
    undeclared, unread = param_mismatch(stage, _module(stage))
    assert undeclared == set(), f"{name} reads params that dvc.yaml does not declare: {sorted(undeclared)}"
    assert unread == set(), f"{name} declares params it never reads: {sorted(unread)}"


@pytest.mark.parametrize(("name", "stage"), list(_iter_stages()), ids=[n for n, _ in _iter_stages()])
def test_stages_read_params_only_through_their_load_params(name: str, stage: dict) -> None:
    """What `load_params` reads is what the stage reads: no other way into params.yaml."""
    source = _module_file(_stage_module(stage["cmd"])).read_text()
    assert "def load_params(params: StageParams)" in source
    # main() opens params.yaml once, straight into load_params (stages without params never do).
    opened = source.count("load_params(StageParams(paths.params))")
    assert opened == source.count("StageParams(") == (1 if _stage_params(stage) else 0)
    for other in ("read_params", "parse_section", "load_section", "import yaml", "params.yaml"):
        assert other not in source, f"{name} reads params another way: {other}"


def test_the_contract_catches_an_undeclared_param_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proof that the check above can fail: a stage that also reads `train` without declaring it."""
    from pipeline.house_prices.params import TrainParams
    from pipeline.stages import fetch

    real = fetch.load_params

    def sneaky(params: StageParams) -> object:
        params.section("train", TrainParams)
        return real(params)

    monkeypatch.setattr(fetch, "load_params", sneaky)
    undeclared, _ = param_mismatch(DVC["fetch"], fetch)
    assert "train.lr" in undeclared and "data.source" not in undeclared


def test_no_stage_declares_the_runtime_section() -> None:
    for name, stage in _iter_stages():
        assert not any(key.split(".")[0] == RUNTIME for key in _stage_params(stage)), name


def test_metrics_and_curve_files_are_committed_not_cached() -> None:
    """DVC's convention: small metrics and plot CSVs live in git, so `dvc metrics diff` works on a clone."""
    for name, stage in _iter_stages():
        for kind in ("metrics", "plots"):
            for entry in stage.get(kind, []):
                path, props = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
                if not path.endswith(".png"):
                    assert props.get("cache") is False, f"{name}: {path} should be cache: false"


def test_a_new_projects_stages_name_params_it_writes_and_paths_the_stages_use() -> None:
    from pipeline.common.paths import ProjectPaths
    from pipeline.tabular.params import DEFAULTS

    stages, paths = _generated_stages(), ProjectPaths(Path("."))
    for name, stage in stages.items():
        for key in stage.get("params", []):
            node = DEFAULTS
            for part in key.split("."):
                assert part in node, f"{name}: params key {key} not in the params kpipe new writes"
                node = node[part]
    declared = {str(next(iter(o)) if isinstance(o, dict) else o)
                for stage in stages.values() for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])}
    used = {paths.raw_train, paths.raw_test, paths.raw_sample, paths.clean_train, paths.clean_test,
            paths.validation_report, paths.oof_predictions, paths.blend_model_dir, paths.competition_cv_metrics,
            paths.competition_train_metrics, paths.competition_cv_png, paths.submission,
            paths.competition_residuals_dir,
            paths.competition_residuals_metrics, paths.competition_residuals_png}
    assert {str(p) for p in used} == declared


def _upstream(stage: str) -> set[str]:
    """`stage` and every stage whose outputs it depends on, transitively: what `dvc repro stage` runs."""
    produced_by = {str(next(iter(o)) if isinstance(o, dict) else o): name for name, s in DVC.items()
                   for kind in ("outs", "metrics", "plots") for o in s.get(kind, [])}
    found, todo = set(), [stage]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += [produced_by[d] for d in DVC[name].get("deps", []) if d in produced_by]
    return found


def test_the_committed_lock_holds_the_stages_make_runs_and_no_other() -> None:
    """`dvc exp apply` checks out every output dvc.lock names, and a fresh clone's cache holds only
    what its `make` ran: a locked stage that `make` does not run (Fashion-MNIST, the studies,
    features, residuals) would fail the checkout. Their committed metrics stay the record of them."""
    locked = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    assert locked == _upstream("predict") == {"fetch", "validate", "cv", "train", "predict"}


def test_pictures_are_cached_outs_not_plots() -> None:
    """`dvc plots show` loads every plot file: a picture of a stage not yet run would be a load failure."""
    for name, stage in _iter_stages():
        for entry in stage.get("plots", []):
            path = str(next(iter(entry)) if isinstance(entry, dict) else entry)
            assert not path.endswith(".png"), f"{name}: {path}"


def test_the_outs_of_stages_outside_makes_chain_are_not_cached() -> None:
    """`dvc exp apply` checks out every cached out of every stage: one that a clone's `make` never
    produced (no hash, nothing in the cache) fails the checkout, so those outs are `cache: false`."""
    chain = _upstream("predict")
    for name, stage in _iter_stages():
        if name in chain:
            continue
        for entry in stage.get("outs", []):
            path, props = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            assert props.get("cache") is False, f"{name}: {path} should be cache: false"
