"""The OOF library: a member's cross-validation is stored under a key of everything it depends on,
a read is the recomputation bit for bit, any changed ingredient is a miss, and a killed writer
leaves nothing that is read."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SHIPPED_PARAMS
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.params import with_overrides
from pipeline.house_prices.experiment import parse_experiment, run_cv
from pipeline.tabular.oof_library import ARRAYS, OOFLibrary

ROOT = Path(__file__).resolve().parents[1]
# A torch member and a scikit-learn member, small and quick.
ENSEMBLE = {"model.kind": "ensemble", "model.blend": "greedy", "train.epochs": 3, "cv.folds": 3, "cv.repeats": 1,
            "model.members": [{"model.kind": "linear"}, {"model.kind": "sklearn", "sklearn.estimator": "lasso"}]}


def _params(**changes: object):
    return parse_experiment(with_overrides(copy.deepcopy(SHIPPED_PARAMS), {**ENSEMBLE, **changes}))


@pytest.fixture
def small(clean_frames):
    train, test = clean_frames
    return train.head(240), test.head(50)


def _same(a, b) -> None:
    for field in ("fold_scores", "oof_repeats", "prices", "test_prices"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    for ma, mb in zip(a.members, b.members, strict=True):
        for field in ("fold_scores", "oof_repeats", "test_prices"):
            assert np.array_equal(getattr(ma, field), getattr(mb, field)), field
        assert np.array_equal(ma.history.train, mb.history.train)
        assert np.array_equal(ma.history.valid, mb.history.valid, equal_nan=True)


def test_a_library_hit_equals_the_recomputation_bit_for_bit(small, tmp_path: Path) -> None:
    library = OOFLibrary(tmp_path / "oof")
    first = run_cv(_params(), *small, library=library)
    assert first.hits == 0 and len(library.entries()) == 2
    read = run_cv(_params(), *small, library=library)
    assert read.hits == 2
    recomputed = run_cv(_params(), *small, library=OOFLibrary(tmp_path / "elsewhere"))
    assert recomputed.hits == 0
    _same(read, recomputed)
    _same(first, recomputed)
    assert read.test_prices.shape == (50,) and np.isfinite(read.test_prices).all()


@pytest.mark.parametrize(("change", "misses"), [
    ({"train.lr": 0.002}, {0}),  # a torch param: the lasso member is still a hit
    ({"sklearn.lasso.alpha": 0.001}, {1}),  # the lasso's: the torch member is still a hit
    ({"features.derived": False}, {0, 1}),  # every member reads the features
    ({"base.seed": 7}, {0, 1}),  # another shuffle of the folds
    ({"cv.folds": 4}, {0, 1}),
    ({"cv.repeats": 2}, {0, 1}),
], ids=["torch-param", "lasso-param", "features", "seed", "folds", "repeats"])
def test_changing_one_ingredient_misses_exactly_the_members_it_touches(small, tmp_path: Path, change: dict,
                                                                       misses: set[int]) -> None:
    library = OOFLibrary(tmp_path / "oof")
    base = run_cv(_params(), *small, library=library)
    changed = run_cv(_params(**change), *small, library=library)
    assert changed.hits == 2 - len(misses)
    assert {i for i, (a, b) in enumerate(zip(base.keys, changed.keys, strict=True)) if a != b} == misses


def test_other_training_data_is_a_miss(small, tmp_path: Path) -> None:
    library = OOFLibrary(tmp_path / "oof")
    train, test = small
    run_cv(_params(), train, test, library=library)
    edited = train.copy()
    edited.loc[edited.index[3], "LotArea"] += 1  # one cell: another SHA-1 of the data
    assert run_cv(_params(), edited, test, library=library).hits == 0
    assert run_cv(_params(), train, test, library=library).hits == 2


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    import pipeline.tabular.oof_library as lib
    real = np.save
    def slow_save(fh, values, allow_pickle=False):
        real(fh, values, allow_pickle=allow_pickle)
        fh.flush()
        print("wrote one array", flush=True)
        time.sleep(60)  # killed here, with the entry half-written
    lib.np.save = slow_save
    arrays = {name: np.arange(10.0) for name in lib.ARRAYS}
    lib.OOFLibrary(Path(sys.argv[1])).put("k" * 40, {"cv": {"mean": 0.1, "std": 0.0}}, arrays)
""")


def test_a_writer_killed_mid_entry_leaves_nothing_that_is_read(tmp_path: Path) -> None:
    root = tmp_path / "oof"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert writer.stdout is not None and writer.stdout.readline().strip() == "wrote one array"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    library = OOFLibrary(root)
    assert any(p.name.startswith(".tmp-") for p in root.iterdir())  # the half-written folder is there...
    assert library.get("k" * 40) is None and library.entries() == []  # ... and never read
    assert library.prune(stale_tmp_s=0) == [] and list(root.iterdir()) == []
    # the next writer of the same key stores a whole entry
    entry = library.put("k" * 40, {"cv": {"mean": 0.1, "std": 0.0}}, {n: np.arange(3.0) for n in ARRAYS})
    assert library.get(entry.key) is not None and set(entry.arrays()) == set(ARRAYS)


def test_kpipe_oof_lists_entries_best_first_and_prunes(small, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPIPE_OOF_LIBRARY", str(tmp_path / "oof"))
    library = OOFLibrary.for_project(ROOT)
    assert library.root == tmp_path / "oof"
    run_cv(_params(), *small, library=library)
    run_cv(_params(**{"sklearn.lasso.alpha": 0.01}), *small, library=library)
    entries = library.entries()
    assert len(entries) == 3 and [e.score for e in entries] == sorted(e.score for e in entries)
    listed = CliRunner().invoke(app, ["oof"])
    assert listed.exit_code == 0, listed.output
    assert "3 entries" in listed.output and entries[0].key[:12] in listed.output
    assert listed.output.index(entries[0].key[:12]) < listed.output.index(entries[-1].key[:12])
    pruned = CliRunner().invoke(app, ["oof", "--prune-keep", "1"])
    assert pruned.exit_code == 0 and "removed 2 entries" in pruned.output
    assert [e.key for e in library.entries()] == [entries[0].key]
    time.sleep(0.01)
    assert library.prune(older_than_days=0) == [entries[0].key] and library.entries() == []
