"""Tables of the metadata store and their versioned migrations (SQLAlchemy Core).

Every table name carries a prefix (``zb_`` by default) so that a store can share a database with
other applications, and tests can give each case its own tables. Migrations are numbered
functions; :data:`SCHEMA_VERSION` is the newest. A store records its version in
``<prefix>schema_version`` and applies the missing migrations in order, under a lock, when it is
first opened by a newer zenml-bridge.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

#: The newest schema version (this module imports SQLAlchemy only when tables are built).
SCHEMA_VERSION = 5


@dataclass(frozen=True)
class Tables:
    """The tables of one store (one table prefix)."""

    metadata: sa.MetaData
    schema_version: sa.Table
    pipelines: sa.Table
    pipeline_versions: sa.Table
    runs: sa.Table
    step_runs: sa.Table
    artifacts: sa.Table
    consumers: sa.Table
    cache: sa.Table
    statements: sa.Table


def _long_text(backend: str) -> Any:
    import sqlalchemy as sa

    if backend != "mysql":
        return sa.Text()
    # Long JSON documents (an IR of 1,000 steps) exceed MySQL's 64 KiB TEXT. The MySQL
    # dialect module is imported only for MySQL/MariaDB stores.
    from sqlalchemy.dialects.mysql import LONGTEXT

    return LONGTEXT()


def _double() -> Any:
    import sqlalchemy as sa

    # sa.Double is new in SQLAlchemy 2.0; on 1.4 a 53-bit FLOAT is the same 8-byte float
    # (DOUBLE PRECISION on PostgreSQL, DOUBLE on MySQL/MariaDB, REAL on SQLite).
    double = getattr(sa, "Double", None)
    return double() if double is not None else sa.Float(precision=53)


@cache
def tables(prefix: str = "zb_", backend: str = "sqlite") -> Tables:
    """The table definitions for ``prefix`` (built once per prefix and backend)."""
    import sqlalchemy as sa

    Id = sa.String(255)
    Name = sa.String(128)
    Sha = sa.String(64)
    md = sa.MetaData()
    LongText = _long_text(backend)
    Double = _double()
    p = prefix
    # Schema 5: visualizations of artifacts (stores/visualizations.py defines the table on md).
    from zenml_bridge.stores.visualizations import define_table

    define_table(md, p)
    return Tables(
        metadata=md,
        schema_version=sa.Table(
            f"{p}schema_version",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("applied_at", Double, nullable=False),
        ),
        pipelines=sa.Table(
            f"{p}pipelines",
            md,
            sa.Column("name", Name, primary_key=True),
            sa.Column("created_at", Double, nullable=False),
        ),
        pipeline_versions=sa.Table(
            f"{p}pipeline_versions",
            md,
            sa.Column("ir_sha256", Sha, primary_key=True),
            sa.Column("pipeline", Name, nullable=False, index=True),
            sa.Column("ir_json", LongText, nullable=False),
            sa.Column("created_at", Double, nullable=False),
        ),
        runs=sa.Table(
            f"{p}runs",
            md,
            sa.Column("run_id", Id, primary_key=True),
            sa.Column("pipeline", Name, nullable=False, index=True),
            sa.Column("ir_sha256", Sha, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("parameters", LongText, nullable=False),
            sa.Column("git_sha", sa.String(64)),
            sa.Column("git_dirty", sa.Boolean),
            sa.Column("code_archive_sha256", Sha),
            sa.Column("links", LongText, nullable=False),
            sa.Column("backend", sa.String(32), nullable=False),
            sa.Column("started_at", Double, nullable=False, index=True),
            sa.Column("ended_at", Double),
            # Schema 3: why the run ended as it did (signal, lost, cancel) and when a process
            # working on it last said it was alive.
            sa.Column("reason", LongText),
            sa.Column("heartbeat_at", Double),
            sa.Index(f"ix_{p}runs_status", "status"),
        ),
        step_runs=sa.Table(
            f"{p}step_runs",
            md,
            sa.Column("run_id", Id, primary_key=True),
            sa.Column("step", Name, primary_key=True),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("cache_key", Sha),
            # output name -> {id, uri, sha256, materializer, version}: one read resolves inputs.
            sa.Column("outputs", LongText, nullable=False),
            sa.Column("parameters", LongText, nullable=False),
            sa.Column("metadata", LongText, nullable=False),
            sa.Column("metrics", LongText, nullable=False),
            sa.Column("error", LongText),
            sa.Column("attempt", sa.Integer, nullable=False),
            sa.Column("started_at", Double, nullable=False),
            sa.Column("ended_at", Double, nullable=False),
            # Schema 3: the IR this attempt ran (a new attempt of a run may bring a new IR)
            # and the heartbeat of a step process while the step is running.
            sa.Column("ir_sha256", Sha),
            sa.Column("heartbeat_at", Double),
        ),
        artifacts=sa.Table(
            f"{p}artifacts",
            md,
            sa.Column("artifact_id", sa.String(64), primary_key=True),
            sa.Column("run_id", Id, nullable=False, index=True),
            sa.Column("step", Name, nullable=False),
            sa.Column("output", Name, nullable=False),
            sa.Column("uri", sa.String(1024), nullable=False),
            sa.Column("content_sha256", Sha, nullable=False),
            sa.Column("materializer", sa.String(255), nullable=False),
            sa.Column("materializer_version", sa.String(32), nullable=False),
            sa.Column("type_name", sa.String(255), nullable=False),
            sa.Column("size", sa.BigInteger, nullable=False),
            sa.Column("created_at", Double, nullable=False, index=True),
        ),
        consumers=sa.Table(
            f"{p}consumers",
            md,
            sa.Column("artifact_id", sa.String(64), primary_key=True),
            sa.Column("run_id", Id, primary_key=True),
            sa.Column("step", Name, primary_key=True),
            sa.Column("input", Name, primary_key=True),
        ),
        cache=sa.Table(
            f"{p}cache",
            md,
            sa.Column("cache_key", Sha, primary_key=True),
            sa.Column("run_id", Id, nullable=False),
            sa.Column("step", Name, nullable=False),
            sa.Column("outputs", LongText, nullable=False),
            sa.Column("created_at", Double, nullable=False),
        ),
        # The hot-path statements compiled for this store (SQLite), so that a run on a ready
        # store needs no SQLAlchemy import. key = schema and statement-set version.
        statements=sa.Table(
            f"{p}statements",
            md,
            sa.Column("key", sa.String(32), primary_key=True),
            sa.Column("name", Name, primary_key=True),
            sa.Column("sql", LongText, nullable=False),
            sa.Column("params", LongText, nullable=False),
        ),
    )


def _v1(conn: sa.Connection, t: Tables) -> None:
    for table in (
        t.pipelines,
        t.pipeline_versions,
        t.runs,
        t.step_runs,
        t.artifacts,
        t.consumers,
        t.cache,
    ):
        table.create(conn, checkfirst=True)


def _v2(conn: sa.Connection, t: Tables) -> None:
    t.statements.create(conn, checkfirst=True)


#: Columns added by migration 3 (run and step states: reasons, heartbeats, IR per attempt).
V3_COLUMNS = {
    "runs": ("reason", "heartbeat_at"),
    "step_runs": ("ir_sha256", "heartbeat_at"),
}


def _v3(conn: sa.Connection, t: Tables) -> None:
    import sqlalchemy as sa

    inspector = sa.inspect(conn)
    for attr, names in V3_COLUMNS.items():
        table: sa.Table = getattr(t, attr)
        existing = {c["name"] for c in inspector.get_columns(table.name)}
        for name in names:
            if name in existing:  # a store created by v1 of this release has them already
                continue
            column = table.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            quote = conn.dialect.identifier_preparer.quote
            conn.execute(
                sa.text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(name)} {kind}")
            )
    indexes = {i["name"] for i in inspector.get_indexes(t.runs.name)}
    for index in t.runs.indexes:
        if index.name not in indexes:
            index.create(conn)


def _v4(conn: sa.Connection, t: Tables) -> None:
    from zenml_bridge.stores.run_values import migrate_v4

    migrate_v4(conn, t)


#: version -> migration; each brings the schema from version-1 to version.
def _v5(conn: sa.Connection, t: Tables) -> None:
    from zenml_bridge.stores.visualizations import migrate_v5

    migrate_v5(conn, t)


MIGRATIONS: dict[int, Callable[[sa.Connection, Tables], None]] = {
    1: _v1,
    2: _v2,
    3: _v3,
    4: _v4,  # run values (stores/run_values.py)
    5: _v5,  # visualizations (stores/visualizations.py)
}


def migrate(conn: sa.Connection, t: Tables, dialect: str, prefix: str) -> None:
    """Apply the missing migrations in order and record the new version.

    On PostgreSQL the transaction takes an advisory lock (held until it ends). On MySQL/MariaDB
    the caller holds :func:`mysql_lock` around the whole transaction: a named lock released
    inside the transaction would let the next process read the version before this commit.
    """
    import sqlalchemy as sa

    if dialect == "postgresql":
        lock = f"zenml_bridge_migrate_{prefix}"
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": lock})
    t.schema_version.create(conn, checkfirst=True)
    table = t.schema_version
    current = conn.execute(sa.select(table.c.version).where(table.c.id == 1)).scalar()
    if current is not None and current >= SCHEMA_VERSION:
        return  # another process migrated while this one waited for the lock
    for version in range((current or 0) + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version](conn, t)
    values = {"version": SCHEMA_VERSION, "applied_at": time.time()}
    if current is None:
        conn.execute(table.insert().values(id=1, **values))
    else:
        conn.execute(table.update().where(table.c.id == 1).values(**values))


@contextmanager
def mysql_lock(engine: Any, prefix: str, timeout_s: int = 600) -> Iterator[None]:
    """Hold MySQL/MariaDB's named migration lock (on its own connection) around a block."""
    import sqlalchemy as sa

    name = f"zenml_bridge_migrate_{prefix}"[:64]
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT GET_LOCK(:n, :t)"), {"n": name, "t": timeout_s})
        if got.scalar() != 1:
            from zenml_bridge.errors import BridgeError

            raise BridgeError(
                f"Could not take the schema migration lock {name!r} within {timeout_s} s: "
                "another process holds it. Try again when that process has finished."
            )
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
            conn.commit()
