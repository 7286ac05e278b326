"""Migration 3 (run and step states) from a store made by the previous release (schema 2)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from zenml_bridge.stores.connect import create_engine
from zenml_bridge.stores.metadata import MetadataStore
from zenml_bridge.stores.schema import SCHEMA_VERSION, V3_COLUMNS, tables


def _make_schema_2(url: str, prefix: str) -> None:
    """The tables exactly as schema 2 had them (without migration 3's columns and index)."""
    engine = create_engine(url)
    current = tables(prefix, MetadataStore(url, table_prefix="zz_unused_").dialect)
    md = sa.MetaData()
    for attr in ("schema_version", "pipelines", "pipeline_versions", "runs", "step_runs",
                 "artifacts", "consumers", "cache", "statements"):  # fmt: skip
        table = getattr(current, attr)
        skip = set(V3_COLUMNS.get(attr, ()))
        columns = [c._copy() for c in table.columns if c.name not in skip]
        sa.Table(table.name, md, *columns)  # column indexes (index=True) come along
    now = time.time()
    with engine.begin() as conn:
        md.create_all(conn)
        conn.execute(md.tables[f"{prefix}schema_version"].insert(), [
            {"id": 1, "version": 2, "applied_at": now}])  # fmt: skip
        conn.execute(md.tables[f"{prefix}runs"].insert(), [{
            "run_id": "old-run", "pipeline": "p", "ir_sha256": "a" * 64, "status": "running",
            "parameters": "{}", "links": "{}", "backend": "local", "started_at": now - 3600,
        }])  # fmt: skip
        conn.execute(md.tables[f"{prefix}step_runs"].insert(), [{
            "run_id": "old-run", "step": "s", "status": "completed", "outputs": "{}",
            "parameters": "{}", "metadata": "{}", "metrics": "{}", "attempt": 1,
            "started_at": now - 3600, "ended_at": now - 3500,
        }])  # fmt: skip
    engine.dispose()


def test_schema_2_store_is_migrated_to_3(metadata_url: str) -> None:
    prefix = "mig_"
    _make_schema_2(metadata_url, prefix)
    store = MetadataStore(metadata_url, table_prefix=prefix)  # migrates
    inspector = sa.inspect(store.engine)
    for attr, names in V3_COLUMNS.items():
        columns = {c["name"] for c in inspector.get_columns(f"{prefix}{attr}")}
        assert set(names) <= columns
    assert f"ix_{prefix}runs_status" in {i["name"] for i in inspector.get_indexes(f"{prefix}runs")}
    with store._read() as conn:
        version = conn.execute(sa.select(store.t.schema_version.c.version)).scalar()
    assert version == SCHEMA_VERSION  # 3 and every later migration
    # Old records read as before; the old run, running for an hour with no heartbeat, is lost.
    assert store.step_runs("old-run")["s"]["status"] == "completed"
    assert store.sweep_lost(300) == ["old-run"]
    row = store.get_run("old-run")
    assert row is not None and row["status"] == "failed"
    assert row["reason"].startswith("lost (no heartbeat since ")
    # New records work on the migrated store, and a second open does not migrate again.
    store.begin_run(
        run_id="new-run", pipeline="p", ir_sha256="b" * 64, ir_json=lambda: "{}", parameters={}
    )
    assert MetadataStore(metadata_url, table_prefix=prefix).get_run("new-run") is not None
