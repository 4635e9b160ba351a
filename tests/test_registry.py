"""Which registered versions the team trusts (pipeline/common/registry.py): the promoted copies in
`<model>-trusted`; everything else loaded from a team's server comes with a note. Promotion itself
runs against real stores: tests/test_serving.py (one's own) and tests/test_team.py (the team's)."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_only_the_trusted_model_itself_goes_without_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a team's server, any model URI but the trusted model's gets the note; a look-alike name too."""
    from pipeline.common.paths import ProjectPaths
    from pipeline.common.registry import trust_note

    paths = ProjectPaths(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example")
    for trusted in ("models:/house-prices-trusted@champion", "models:/house-prices-trusted/3"):
        assert trust_note(trusted, "house-prices", paths) is None
    for other in ("models:/house-prices/3", "models:/house-prices-trusted-copy@champion"):
        assert trust_note(other, "house-prices", paths).startswith(f"note: {other} is not a version")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # one's own store
    assert trust_note("models:/house-prices/3", "house-prices", paths) is None
