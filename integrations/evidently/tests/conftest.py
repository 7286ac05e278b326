"""Fixtures: a fresh local stack per test, iris data with faults injected, the browser helper.

The data is scikit-learn's bundled iris set (no download), split into a reference half and a
batch half; the faults are made here: shifted distributions, nulls, a missing column.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from zenml_bridge.config import Settings

HERE = Path(__file__).resolve().parent
# ev_pipelines (steps the runner imports by module name) and the repository's tests/browser.py.
for folder in (HERE, HERE.parents[2] / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Settings of a fresh local stack in tmp_path, with optional stack components."""

    def make(**components: Any) -> Settings:
        home = tmp_path / ".zenml_bridge"
        home.mkdir(exist_ok=True)
        return Settings(
            metadata_url=f"sqlite:///{home / 'metadata.db'}",
            artifact_root=str(home / "artifacts"),
            components=components,
            home=home,
        )

    return make
