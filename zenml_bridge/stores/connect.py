"""Engines for metadata URLs: driver choice, SQLite tuning, and errors that say what to do.

Works with SQLAlchemy 1.4 (>= 1.4.49, what Airflow 2 pins) and 2.x: engines are created in
2.0 style (``future=True`` on 1.4), and PostgreSQL URLs get the driver this SQLAlchemy has.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from zenml_bridge.errors import BridgeError
from zenml_bridge.redact import redact_url
from zenml_bridge.stores.fastpath import is_transient_text, tune_sqlite

#: SQLAlchemy 1.4 (Airflow 2 environments): no psycopg 3 dialect, pre-2.0 engine defaults.
SA14 = sa.__version__.startswith("1.")
#: URL scheme -> SQLAlchemy driver name used when the URL names no driver.
DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
EXTRAS = {"psycopg": "postgres", "psycopg2": "postgres", "pymysql": "mysql"}
START_HINTS = {
    "postgresql": "start it (e.g. `pg_ctlcluster 15 main start`, or "
    "`docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres`)",
    "mysql": "start it (e.g. `systemctl start mariadb`, or "
    "`docker run -d -p 3306:3306 -e MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 mariadb`)",
}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


#: 2.0-style engines and connections (commit/rollback, autobegin) on SQLAlchemy 1.4 too.
_FUTURE: dict[str, Any] = {"future": True} if SA14 else {}


def parse_url(url: str) -> sa.URL:
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise BridgeError(
            f"The metadata URL {url!r} is not a SQLAlchemy URL. Use sqlite:///path/metadata.db, "
            "postgresql://user@host:5432/db or mysql://user@host:3306/db."
        ) from None
    if parsed.drivername in DRIVERS:
        parsed = parsed.set(drivername=DRIVERS[parsed.drivername])
    if parsed.drivername == "postgresql+psycopg" and _use_psycopg2():
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def _use_psycopg2() -> bool:
    """psycopg2 instead of psycopg 3: always on SQLAlchemy 1.4 (it has no psycopg 3 dialect),
    on 2.x when only psycopg2 is installed (e.g. what Airflow's postgres provider brings)."""
    if SA14:
        return True
    return importlib.util.find_spec("psycopg") is None and (
        importlib.util.find_spec("psycopg2") is not None
    )


def describe_url(url: str) -> str:
    """The URL with its password and secret query values hidden, for messages and output.

    The one redaction of zenml-bridge (:func:`zenml_bridge.redact.redact_url`), for metadata
    URLs and artifact roots alike.
    """
    return redact_url(url)


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` writes."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            return _sqlite_engine(parsed)
        return sa.create_engine(parsed, pool_recycle=3600, pool_pre_ping=False, **_FUTURE)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get(str(exc.name), "")
        raise BridgeError(
            f"The metadata URL {describe_url(url)} needs the Python driver '{exc.name}', which "
            f"is not installed. Install it: pip install 'zenml-bridge[{extra}]'."
        ) from None


def _sqlite_engine(parsed: sa.URL) -> sa.Engine:
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = os.path.dirname(os.path.abspath(database))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise BridgeError(
                f"Cannot create the folder {folder} of the SQLite metadata store ({exc.strerror})."
                " Choose a writable location with ZENML_BRIDGE_METADATA_URL or "
                "`zenml-bridge init` in a writable project folder."
            ) from None
    options: dict[str, Any] = dict(_FUTURE)
    if SA14 and database and database != ":memory:":
        options["poolclass"] = sa.pool.QueuePool  # 1.4 defaults to NullPool for files, 2.x not
    engine = sa.create_engine(
        parsed, connect_args={"timeout": 60, "check_same_thread": False}, **options
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        tune_sqlite(dbapi_connection)  # autocommit driver: we issue BEGIN ourselves (_begin)

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("zb_read"):
            return  # single-statement reads autocommit: no snapshot held, no lock taken
        # Take the write lock up front: a deferred transaction that upgrades from read to write
        # fails with SQLITE_BUSY at once when another process wrote in between.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_transient(exc: sa.exc.DBAPIError) -> bool:
    """Whether retrying the transaction may succeed (busy SQLite, deadlock, serialization)."""
    return is_transient_text(str(exc.orig) if exc.orig is not None else str(exc))


def connection_error(url: str, exc: BaseException) -> BridgeError:
    """A BridgeError for a store that cannot be reached: which host/port, how to start it."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if backend == "sqlite" and ("not a database" in reason or "malformed" in reason):
        return BridgeError(
            f"The metadata store {parsed.database} is not a usable SQLite database ({reason}). "
            "Move the file away (a new store is created in its place) or restore it from a "
            "backup, or set ZENML_BRIDGE_METADATA_URL to another store."
        )
    if backend == "sqlite":
        return BridgeError(
            f"Cannot open the SQLite metadata store {parsed.database} ({reason}). Check that the "
            "file and its folder are writable, or set ZENML_BRIDGE_METADATA_URL to another store."
        )
    host = parsed.host or "localhost"
    port = parsed.port or DEFAULT_PORTS.get(backend, 0)
    hint = START_HINTS.get("mysql" if backend == "mariadb" else backend, "start it")
    return BridgeError(
        f"Cannot connect to the metadata store {describe_url(url)} at {host}:{port} ({reason}). "
        f"Is the {backend} server running there? {hint[0].upper()}{hint[1:]}, or point "
        "ZENML_BRIDGE_METADATA_URL (or the stack's metadata_url) at a reachable database."
    )
