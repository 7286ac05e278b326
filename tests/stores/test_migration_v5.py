"""Migration 5 (visualizations table) on a store made by the release before it (schema 3).

The old store is made by that release's own code: its ``zenml_bridge`` package, taken from git
at the commit this branch started from, runs in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from zenml_bridge.stores import visualizations
from zenml_bridge.stores.metadata import MetadataStore
from zenml_bridge.stores.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
#: The last commit with schema 3 (main before issue 12).
SCHEMA_3_COMMIT = "18dd9bd"

MAKE_OLD_STORE = """
import sys
from zenml_bridge.stores.metadata import MetadataStore
from zenml_bridge.stores.schema import SCHEMA_VERSION
assert SCHEMA_VERSION == 3, SCHEMA_VERSION
store = MetadataStore(sys.argv[1], table_prefix="old_")
store.begin_run(run_id="old-run", pipeline="p", ir_sha256="a" * 64, ir_json=lambda: "{}",
                parameters={})
store.record_step(run_id="old-run", step="s", status="completed", outputs={}, started_at=1.0,
                  ended_at=2.0)
store.finish_run("old-run", "completed")
"""


def _old_release(tmp_path: Path) -> Path:
    archive = tmp_path / "old.tar"
    done = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "-o", str(archive), SCHEMA_3_COMMIT, "zenml_bridge"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"git cannot give the schema-3 release: {done.stderr.strip()}")
    folder = tmp_path / "old"
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder


def test_a_schema_3_store_is_migrated_to_5(metadata_url: str, tmp_path: Path) -> None:
    old = _old_release(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(old)}
    made = subprocess.run(
        [sys.executable, "-c", MAKE_OLD_STORE, metadata_url],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    store = MetadataStore(metadata_url, table_prefix="old_")  # migrates
    with store._read() as conn:
        assert conn.execute(sa.select(store.t.schema_version.c.version)).scalar() == 5
    assert SCHEMA_VERSION == 5
    assert "old_visualizations" in sa.inspect(store.engine).get_table_names()
    row = store.get_run("old-run")
    assert row is not None and row["status"] == "completed"
    assert store.step_runs("old-run")["s"]["status"] == "completed"
    visualizations.record(store, "art1", {"report.html": 12, "plot.png": 3})
    visualizations.record(store, "art1", {"report.html": 12})  # again: kept once
    assert visualizations.listed(store, "art1") == [
        {"name": "plot.png", "media_type": "image/png", "size": 3},
        {"name": "report.html", "media_type": "text/html", "size": 12},
    ]
    # A second open does not migrate again; the old release now refuses the newer store.
    assert MetadataStore(metadata_url, table_prefix="old_").get_run("old-run") is not None
    refused = subprocess.run(
        [sys.executable, "-c", MAKE_OLD_STORE, metadata_url],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "has schema version 5" in refused.stderr
