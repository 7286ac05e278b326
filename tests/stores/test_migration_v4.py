"""Migration 4 (run values) on a store made by the last schema-3 release of this project: its
code is taken from git (commit RELEASE) and creates the store in a child process, then this
checkout opens, migrates and uses it. SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
import sqlalchemy as sa

from zenml_bridge.stores.metadata import MetadataStore
from zenml_bridge.stores.run_values import log_values, run_values
from zenml_bridge.stores.schema import SCHEMA_VERSION

#: The main branch when schema 4 was written (schema 3).
RELEASE = "18dd9bd"
REPO = Path(__file__).resolve().parents[2]

MAKE_STORE = """
import sys
from zenml_bridge.stores.metadata import MetadataStore
from zenml_bridge.stores.schema import SCHEMA_VERSION
assert SCHEMA_VERSION == 3, SCHEMA_VERSION
store = MetadataStore(sys.argv[1], table_prefix="rel_")
store.begin_run(run_id="old-run", pipeline="p", ir_sha256="a" * 64, ir_json=lambda: "{}",
                parameters={"rows": 3})
print(__import__("zenml_bridge").__file__)
"""


@pytest.fixture(scope="module")
def release_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", RELEASE, "zenml_bridge"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    folder = tmp_path_factory.mktemp("release")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        # Our own archive; the "data" filter where this Python has it (3.10.12+, 3.11.4+).
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(folder, **safe)
    return folder


def test_a_schema_3_store_is_migrated_to_4(metadata_url: str, release_code: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(release_code)}
    made = subprocess.run(
        [sys.executable, "-c", MAKE_STORE, metadata_url],
        env=env, capture_output=True, text=True, timeout=120, cwd=release_code,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().startswith(str(release_code))  # the old code made it

    store = MetadataStore(metadata_url, table_prefix="rel_")  # migrates
    with store._read() as conn:
        version = conn.execute(sa.select(store.t.schema_version.c.version)).scalar()
    assert version == SCHEMA_VERSION >= 4
    assert "rel_run_values" in sa.inspect(store.engine).get_table_names()
    # The old run reads as before and takes run values now.
    assert store.get_run("old-run")["parameters"] == {"rows": 3}
    log_values(store, "old-run", "metric", {"auc": 0.5}, step="s")
    log_values(store, "old-run", "metric", {"auc": 0.75})  # a later value replaces it
    log_values(store, "old-run", "metadata", {"note": {"why": "migrated"}})
    reopened = MetadataStore(metadata_url, table_prefix="rel_")
    assert run_values(reopened, "old-run") == {
        "metrics": {"auc": 0.75},
        "metadata": {"note": {"why": "migrated"}},
    }
    reopened.drop_tables()
