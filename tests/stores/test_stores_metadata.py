"""The metadata store suite, once per database (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from zenml_bridge.errors import BridgeError
from zenml_bridge.stores.metadata import MetadataStore
from zenml_bridge.stores.schema import SCHEMA_VERSION


def _artifact(art_id: str, run_id: str, step: str, output: str = "output") -> dict:
    return {
        "artifact_id": art_id,
        "run_id": run_id,
        "step": step,
        "output": output,
        "uri": f"/a/{run_id}/{step}/{output}",
        "content_sha256": "c" * 64,
        "materializer": "builtins.json",
        "materializer_version": "1",
        "type_name": "builtins.list",
        "size": 12,
        "created_at": time.time(),
    }


def _info(art_id: str) -> dict:
    return {
        "id": art_id,
        "uri": "/u",
        "sha256": "c" * 64,
        "materializer": "builtins.json",
        "version": "1",
        "type": "builtins.list",
    }


def _begin(store: MetadataStore, run_id: str, ir_json: str = "{}") -> None:
    store.begin_run(
        run_id=run_id,
        pipeline="training",
        ir_sha256="a" * 64,
        ir_json=lambda: ir_json,
        parameters={"rows": 5},
        git_sha="f" * 40,
        git_dirty=True,
    )


def test_schema_is_created_and_versioned(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    with store.engine.connect() as conn:
        version = conn.execute(sa.select(store.t.schema_version.c.version)).scalar()
    assert version == SCHEMA_VERSION
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"zb_runs", "zb_step_runs", "zb_artifacts", "zb_consumers", "zb_cache"} <= names
    MetadataStore(metadata_url)  # opening again migrates nothing and does not fail


def test_concurrent_first_open_migrates_once(metadata_url: str) -> None:
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            MetadataStore(metadata_url, table_prefix="zc_")
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = MetadataStore(metadata_url, table_prefix="zc_")
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(store.t.schema_version)).all()
    assert len(rows) == 1


def test_run_step_artifacts_lineage_and_cache(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    _begin(store, "run-1")
    _begin(store, "run-1")  # idempotent: a second process of the same run
    store.record_step(
        run_id="run-1",
        step="load",
        status="completed",
        outputs={"output": _info("art1")},
        new_artifacts=[_artifact("art1", "run-1", "load")],
        cache_key="k1",
        write_cache=True,
        parameters={"rows": 5},
        metrics={"acc": 0.5},
        started_at=1.0,
        ended_at=2.0,
    )
    store.record_step(
        run_id="run-1",
        step="train",
        status="completed",
        outputs={},
        consumed=[("art1", "df")],
        cache_key="k2",
        write_cache=True,
        started_at=2.0,
        ended_at=3.0,
    )
    assert store.lookup_cache("k1") == {"output": _info("art1")}
    assert store.lookup_cache("missing") is None
    steps = store.step_runs("run-1")
    assert steps["load"]["metrics"] == {"acc": 0.5}
    assert steps["load"]["outputs"]["output"]["id"] == "art1"
    assert store.complete_run_if_done("run-1", 3) is False
    assert store.complete_run_if_done("run-1", 2) is True
    run = store.get_run("run-1")
    assert run is not None
    assert (run["status"], run["git_dirty"], run["parameters"]) == ("completed", True, {"rows": 5})
    assert [c["step"] for c in store.consumers("art1")] == ["train"]
    assert store.resolve_artifact("art")["artifact_id"] == "art1"
    assert [r["run_id"] for r in store.list_runs()] == ["run-1"]


def test_step_record_is_replaced_on_retry(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    _begin(store, "r")
    common = {"run_id": "r", "step": "s", "started_at": 1.0, "ended_at": 2.0}
    store.record_step(status="failed", outputs={}, error="boom", attempt=1, **common)
    store.record_step(
        status="completed",
        outputs={"o": _info("x")},
        attempt=2,
        new_artifacts=[_artifact("x", "r", "s", "o")],
        **common,
    )
    row = store.step_runs("r")["s"]
    assert (row["status"], row["attempt"], row["error"]) == ("completed", 2, None)


def test_resolve_run_latest_prefix_and_did_you_mean(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    _begin(store, "training-20261122-aaaa")
    time.sleep(0.01)
    _begin(store, "training-20261122-bbbb")
    assert store.resolve_run("latest")["run_id"] == "training-20261122-bbbb"
    assert store.resolve_run("training-20261122-a")["run_id"] == "training-20261122-aaaa"
    with pytest.raises(BridgeError, match="matches several runs"):
        store.resolve_run("training-2026")
    with pytest.raises(BridgeError, match=re.escape("Did you mean 'training-20261122-bbbb'?")):
        store.resolve_run("training-20261122-bbbx")
    store.record_step(
        run_id="training-20261122-aaaa",
        step="s",
        status="completed",
        outputs={},
        new_artifacts=[_artifact("art1", "training-20261122-aaaa", "s")],
        started_at=1.0,
        ended_at=1.0,
    )
    with pytest.raises(BridgeError, match=re.escape("Did you mean 'art1'?")):
        store.resolve_artifact("art2")


def test_large_ir_document_is_stored(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    big = '{"steps": "' + "x" * 200_000 + '"}'
    _begin(store, "big", ir_json=big)
    assert store.get_ir_json("a" * 64) == big


def test_links_are_updated(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    _begin(store, "r")
    store.update_run("r", links={"mlflow.run_id": "abc"})
    store.finish_run("r", "failed")
    run = store.get_run("r")
    assert run is not None
    assert run["links"] == {"mlflow.run_id": "abc"}
    assert run["status"] == "failed"
    assert run["ended_at"] is not None


def test_unreachable_postgres_names_host_port_and_fix() -> None:
    with pytest.raises(BridgeError) as info:
        MetadataStore("postgresql://postgres@127.0.0.1:9/test")
    message = str(info.value)
    assert "127.0.0.1:9" in message
    assert "Is the postgresql server running there?" in message
    assert "ZENML_BRIDGE_METADATA_URL" in message


def test_unreachable_mariadb_names_host_port() -> None:
    with pytest.raises(BridgeError, match=re.escape("at 127.0.0.1:9 ")):
        MetadataStore("mysql://root@127.0.0.1:9/test")


def test_not_a_url() -> None:
    with pytest.raises(BridgeError, match="is not a SQLAlchemy URL"):
        MetadataStore("not a url")


def test_migration_from_version_1(metadata_url: str) -> None:
    from zenml_bridge.stores.schema import tables

    backend = "mysql" if metadata_url.startswith("mysql") else metadata_url.split(":")[0]
    t = tables("zm_", backend)
    store = MetadataStore(metadata_url, table_prefix="zm_")
    with store.engine.begin() as conn:  # take it back to a version-1 store
        t.statements.drop(conn)
        conn.execute(t.schema_version.update().values(version=1))
    _begin(store, "old-run")
    reopened = MetadataStore(metadata_url, table_prefix="zm_")
    with reopened.engine.connect() as conn:
        assert conn.execute(sa.select(t.schema_version.c.version)).scalar() == SCHEMA_VERSION
    assert reopened.get_run("old-run") is not None
    assert "zm_statements" in set(sa.inspect(reopened.engine).get_table_names())


def test_a_ready_postgres_store_runs_without_sqlalchemy(  # type: ignore[no-untyped-def]
    postgres_url, stores_env, monkeypatch
) -> None:
    """A process that opens a ready PostgreSQL store (an orchestrator task) reads the compiled
    statements over a plain driver connection: SQLAlchemy is never imported, and the run is
    recorded as through SQLAlchemy. With SQLAlchemy 1.4 (psycopg2) this checks the driver
    choice too: the statements are psycopg2's, although psycopg 3 is installed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    MetadataStore(postgres_url)  # like `zenml-bridge init`: creates it, saves the statements
    runtime_tests = Path(__file__).parent.parent / "runtime"
    code = (
        "import sys, zb_pipes; run = zb_pipes.chain(rows=3); "
        "rerun = zb_pipes.chain(rows=3); "
        "print(run.status, {s.status for s in rerun.steps.values()}, 'sqlalchemy' in sys.modules)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(runtime_tests),
        "ZENML_BRIDGE_METADATA_URL": postgres_url,
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.split() == ["completed", "{'cached'}", "False"], done.stderr
    runs = MetadataStore(postgres_url).list_runs()
    assert sorted(r["status"] for r in runs) == ["completed", "completed"]


def test_a_read_only_session_opens_a_postgres_store_without_saved_statements(
    postgres_url: str,
) -> None:
    """The saved statements are a cache: a store made before they were saved (or for another
    driver) opens in a session that may not write (a standby, a read-only role)."""
    from zenml_bridge.stores.metadata import close_connections

    store = MetadataStore(postgres_url)
    _begin(store, "written-before")
    with store.engine.begin() as conn:
        conn.execute(store.t.statements.delete())
    read_only = postgres_url + "%20-cdefault_transaction_read_only%3Don"
    try:
        reader = MetadataStore(read_only)
        assert reader.get_run("written-before") is not None
        with pytest.raises(Exception, match="read-only transaction"):  # the driver's error
            _begin(reader, "refused")
    finally:
        close_connections(read_only)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dx",
        "postgresql+psycopg2://u:p%40ss@h:5/db?sslmode=require",
        "postgres://u@/db?host=%2Fvar%2Frun%2Fpostgresql",
        "postgresql://u@[::1]:5432/db",
        "postgresql:///db",
    ],
)
def test_the_fast_path_connects_where_sqlalchemy_would(url: str) -> None:
    from zenml_bridge.stores.connect import parse_url
    from zenml_bridge.stores.fastpath import postgres_target

    target = postgres_target(url)
    assert target is not None
    parsed = parse_url(url)
    expected = {
        "user": parsed.username,
        "password": parsed.password,
        "host": parsed.host,
        "port": str(parsed.port) if parsed.port else None,
        "dbname": parsed.database,
        **dict(parsed.query),
    }
    assert target[1] == {k: v for k, v in expected.items() if v}


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:1234/x@127.0.0.1/test",  # libpq would read another host
        "postgresql://h/db?host=a&host=b",  # a host list
        "postgresql://u@h/db?options=-c+x",  # '+' is a space for SQLAlchemy, not for libpq
        "postgresql://u@h%2Fx/db",
        "mysql://root@127.0.0.1:3306/test",
        "postgresql+pg8000://u@h/db",
    ],
)
def test_urls_the_fast_path_leaves_to_sqlalchemy(url: str) -> None:
    from zenml_bridge.stores.fastpath import postgres_target

    assert postgres_target(url) is None


def test_a_mixed_case_prefix_is_left_to_sqlalchemy(postgres_url: str) -> None:
    """SQLAlchemy quotes such table names; the fast path's unquoted ones would name others."""
    from zenml_bridge.stores.fastpath import open_compiled_postgres

    MetadataStore(postgres_url, table_prefix="ZQ_")
    assert open_compiled_postgres(postgres_url, "ZQ_", MetadataStore._statements_key()) is None
    assert open_compiled_postgres(postgres_url, "zb_", MetadataStore._statements_key()) is None
    lower = MetadataStore(postgres_url, table_prefix="zq_")
    _begin(lower, "lower-case")
    assert open_compiled_postgres(postgres_url, "zq_", MetadataStore._statements_key())
    assert MetadataStore(postgres_url, table_prefix="ZQ_").get_run("lower-case") is None


class _FakeConnection:
    closed = False

    def close(self) -> None:
        self.closed = True


def _fake_connections() -> tuple[list[_FakeConnection], Any]:
    """The connections opened so far, and a ``connect`` that opens one more."""
    opened: list[_FakeConnection] = []

    def connect() -> _FakeConnection:
        opened.append(_FakeConnection())
        return opened[-1]

    return opened, connect


def test_the_connection_pool_of_the_fast_path_is_bounded() -> None:
    from zenml_bridge.stores.fastpath import ConnectionPool

    opened, connect = _fake_connections()

    pool = ConnectionPool(connect, keep=1, limit=2, timeout=0.05)
    first, conn1 = pool.checkout()
    second, conn2 = pool.checkout()
    with pytest.raises(BridgeError, match="All 2 connections of this process"):
        pool.checkout()
    first.close()  # kept idle: the next checkout reuses it
    third, conn3 = pool.checkout()
    assert conn3 is conn1
    third.close()
    second.close()  # one idle kept already: closed
    assert conn2.closed and not conn1.closed
    second_broken = pool.checkout()[0]
    second_broken.invalidate()  # a broken connection is closed, its slot freed
    assert conn1.closed and len(opened) == 2
    pool.checkout()
    assert len(opened) == 3


def test_the_fast_path_pool_replaces_connections_older_than_recycle() -> None:
    from zenml_bridge.stores.fastpath import ConnectionPool

    opened, connect = _fake_connections()

    pool = ConnectionPool(connect, recycle=0.05)
    holder, first = pool.checkout()
    holder.close()
    holder, again = pool.checkout()  # young enough: reused
    assert again is first
    holder.close()
    time.sleep(0.1)
    holder, fresh = pool.checkout()  # older than recycle: closed, a new one opened
    assert fresh is not first and first.closed and len(opened) == 2


def test_a_ready_sqlite_store_runs_without_sqlalchemy(tmp_path, stores_env) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys
    from pathlib import Path

    MetadataStore(stores_env["ZENML_BRIDGE_METADATA_URL"])  # like `zenml-bridge init`
    runtime_tests = Path(__file__).parent.parent / "runtime"
    code = (
        "import sys, zb_pipes; run = zb_pipes.chain(rows=3); "
        "print(run.status, 'sqlalchemy' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(runtime_tests)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.split() == ["completed", "False"], done.stderr
    runs = MetadataStore(stores_env["ZENML_BRIDGE_METADATA_URL"]).list_runs()
    assert [r["status"] for r in runs] == ["completed"]
