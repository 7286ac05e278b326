"""Cache entries and run creation, once per database (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from zenml_bridge.stores.metadata import STATEMENTS_VERSION, MetadataStore


def _info(art_id: str) -> dict:
    return {
        "id": art_id,
        "uri": f"/a/{art_id}",
        "sha256": "c" * 64,
        "materializer": "builtins.json",
        "version": "1",
        "type": "builtins.list",
    }


def _begin(store: MetadataStore, run_id: str) -> bool:
    return store.begin_run(
        run_id=run_id,
        pipeline="training",
        ir_sha256="a" * 64,
        ir_json=lambda: "{}",
        parameters={},
    )


def _completed(store: MetadataStore, run_id: str, art_id: str) -> None:
    store.record_step(
        run_id=run_id,
        step="load",
        status="completed",
        outputs={"output": _info(art_id)},
        cache_key="k1",
        write_cache=True,
        started_at=1.0,
        ended_at=2.0,
    )


def test_a_fresh_execution_replaces_the_cache_entry(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    _begin(store, "run-1")
    _completed(store, "run-1", "art1")
    assert store.lookup_cache("k1") == {"output": _info("art1")}
    _begin(store, "run-2")
    _completed(store, "run-2", "art2")  # e.g. --no-cache after art1 was corrupted
    assert store.lookup_cache("k1") == {"output": _info("art2")}
    assert store.cache_entries() == 1
    # A newly opened store (saved statements on SQLite) behaves the same.
    again = MetadataStore(metadata_url)
    _begin(again, "run-3")
    _completed(again, "run-3", "art3")
    assert again.lookup_cache("k1") == {"output": _info("art3")}


def test_begin_run_says_whether_it_created_the_run(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    assert _begin(store, "run-1") is True
    assert _begin(store, "run-1") is False
    assert (
        MetadataStore(metadata_url).begin_run(
            run_id="run-1",
            pipeline="training",
            ir_sha256="a" * 64,
            ir_json=lambda: "{}",
            parameters={},
        )
        is False
    )


def test_old_saved_statements_are_not_used(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    MetadataStore(url)
    with sqlite3.connect(tmp_path / "metadata.db") as conn:
        keys = {row[0] for row in conn.execute("SELECT DISTINCT key FROM zb_statements")}
    assert keys == {MetadataStore._statements_key()}
    assert MetadataStore._statements_key().endswith(f".v{STATEMENTS_VERSION}")
    assert STATEMENTS_VERSION >= 3  # 3: cache entries are replaced, not kept
