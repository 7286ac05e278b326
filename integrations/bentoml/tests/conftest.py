"""Fixtures of the BentoML integration tests: stores in a temp folder, BentoML's store in a temp
folder (never ~/bentoml), and no server left behind (checked in the process table)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports BentoML: its default store and its usage tracking.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="zb-bentoml-default-")
os.environ["BENTOML_DO_NOT_TRACK"] = "True"
sys.path.insert(0, str(Path(__file__).parent))
# The shared process-table check of the core tests (tests/process_table.py).
sys.path.insert(0, str(Path(__file__).parents[3] / "tests"))
from process_table import live_pids


def stop_all(store_url: str) -> set[int]:
    """Stop every deployment recorded in a store; returns all their processes (recorded tree)."""
    from zenml_bridge.deployers import stop_group
    from zenml_bridge.stores.deployments import DeploymentRecords
    from zenml_bridge.stores.metadata import MetadataStore

    pids: set[int] = set()
    for row in DeploymentRecords(MetadataStore(store_url)).list():
        handle = row["handle"]
        if handle.get("pgid"):
            stop_group(int(handle["pgid"]), timeout=5, tree=handle.get("tree"))
            pids.update(int(p) for p in handle.get("tree") or {})
    return pids


@pytest.fixture(scope="module")
def project() -> Iterator[dict[str, str]]:
    """Stores and BentoML home in a temp folder for a module's tests; every deployment recorded
    there is stopped afterwards (also when a test fails), and the process table checked."""
    root = Path(tempfile.mkdtemp(prefix="zb-bentoml-test-"))
    env = {
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{root / 'metadata.db'}",
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(root / "artifacts"),
        "ZENML_BRIDGE_HOME": str(root / "home"),
        "BENTOML_TEST_HOME": str(root / "bentoml"),
    }
    work = root / "work"
    work.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.chdir(work)
        try:
            yield env
        finally:
            left = live_pids(stop_all(env["ZENML_BRIDGE_METADATA_URL"]))
            assert not left, f"server processes left running: {left}"
