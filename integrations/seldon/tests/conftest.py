"""Fixtures: a fresh zenml-bridge home per test, and a process-table check for Seldon servers."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # seldon_pipelines, importable by step code
# The shared process-table check of the core tests (tests/process_table.py).
sys.path.insert(0, str(Path(__file__).parents[3] / "tests"))

from process_table import processes_matching

SERVER_MODULE = "zenml_bridge_seldon.serve"


def seldon_servers(marker: str) -> list[tuple[int, int, str]]:
    """(pid, pgid, args) of live Seldon server processes whose command line has ``marker``."""
    return processes_matching(SERVER_MODULE, marker)


def write_stack(project: Path, **components: dict) -> None:
    """A project in ``project`` whose default stack has these components."""
    folder = project / ".zenml_bridge"
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 1,
        "active_stack": "default",
        "stacks": {"default": {"components": components}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A new project in tmp_path whose stack has the ``seldon`` model deployer.

    Afterwards every Seldon server started from it is stopped (its whole group), and the test
    fails if one was still running: a test must stop what it starts, also when it fails.
    """
    for name in list(os.environ):
        if name.startswith("ZENML_BRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
    write_stack(tmp_path, model_deployer={"flavor": "seldon"})
    monkeypatch.chdir(tmp_path)
    try:
        yield tmp_path / ".zenml_bridge"
    finally:
        left = seldon_servers(str(tmp_path))
        for _, pgid, _ in left:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert left == [], f"Seldon servers left running: {left}"
