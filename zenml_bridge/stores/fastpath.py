"""The metadata store's hot path: Core statements compiled once, run as prepared statements.

Recording a step must cost well under a millisecond. SQLAlchemy's per-execute machinery
(execution context, result objects, pool checkout) costs more than SQLite's own work, so the
few statements of the hot path (look up a cache entry, record a step, begin and finish a run)
are SQLAlchemy Core constructs compiled ONCE for the engine's dialect and executed on a DBAPI
connection. On SQLite each thread keeps its own connection (opening one costs more than a
transaction); on PostgreSQL and MySQL/MariaDB a connection is checked out of a pool for each
transaction and returned after it, so that many threads (``--parallel 32``) share a pool of a
few connections instead of holding one each for their whole life. Everything else uses ordinary
Core execution.

A ready store keeps its compiled statements (table ``statements``, by schema version, statement
set and driver): a process that opens a ready SQLite or PostgreSQL store reads them over a plain
driver connection and never imports SQLAlchemy, which is most of a short process's start-up
(an orchestrator task that is a cache hit).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import random
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

#: Errors after which retrying the transaction may succeed.
TRANSIENT = (
    "database is locked",
    "database is busy",
    "deadlock",
    "could not serialize",
    "lock wait timeout",
)
#: Errors after which the connection is dropped and a new one taken.
BROKEN = (
    "server closed the connection",
    "connection already closed",
    "lost connection",
    "gone away",
    "terminating connection",
    "broken pipe",
    "connection is closed",
    "connection reset",
    "ssl syscall error",
)
Ops = Sequence[tuple[str, Sequence[Mapping[str, Any]]]]


def is_transient_text(text: str) -> bool:
    """Whether a database error's text says that retrying the transaction may succeed."""
    text = text.lower()
    return any(marker in text for marker in TRANSIENT)


Compiled = dict[str, tuple[str, "tuple[str, ...] | None"]]


def tune_sqlite(dbapi_connection: Any) -> None:
    """WAL, busy timeout, NORMAL sync and driver autocommit (we issue BEGIN ourselves)."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 60000")
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        cursor.execute("PRAGMA journal_mode = WAL")
    # WAL + NORMAL: a commit survives a killed process (SIGKILL) without an fsync per
    # transaction; only a power loss may drop the last commits.
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def sqlite_file(url: str) -> str | None:
    """The database file of a plain ``sqlite:///path`` URL, else None."""
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = url[len("sqlite:///") :]
    return path if path and path != ":memory:" and not path.startswith("file:") else None


def _connect_sqlite(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
    tune_sqlite(conn)
    return conn


def open_compiled_sqlite(url: str, prefix: str, key: str) -> CompiledStatements | None:
    """The statements a ready SQLite store holds under ``key``, on a plain sqlite3 connection.

    None when the store is new, older, or unreadable: the caller then opens it through
    SQLAlchemy (which migrates it, reports errors properly and saves the statements).
    """
    path = sqlite_file(url)
    if path is None or not os.path.isfile(path):
        return None
    try:
        conn = _connect_sqlite(path)
    except sqlite3.Error:
        return None
    try:
        from zenml_bridge.stores.schema import SCHEMA_VERSION

        version = conn.execute(
            f"SELECT version FROM {prefix}schema_version WHERE id = 1"
        ).fetchone()
        rows = conn.execute(
            f"SELECT name, sql, params FROM {prefix}statements WHERE key = ?", (key,)
        ).fetchall()
    except sqlite3.Error:
        conn.close()
        return None
    if version is None or version[0] != SCHEMA_VERSION or not rows:
        conn.close()
        return None
    statements = CompiledStatements(
        _compiled(rows), lambda: (None, _connect_sqlite(path)), sqlite=True, error=sqlite3.Error
    )
    statements.adopt(conn)
    return statements


def _compiled(rows: Iterable[Sequence[Any]]) -> Compiled:
    """Saved statements (rows of name, SQL, JSON parameter order) as :data:`Compiled`."""
    sql: Compiled = {}
    for name, text, params in rows:
        order = json.loads(params)
        sql[name] = (text, tuple(order) if order is not None else None)
    return sql


#: A database URL split as SQLAlchemy's ``make_url`` splits it (``sqlalchemy/engine/url.py``,
#: ``_parse_url``): the fast path must reach exactly the database SQLAlchemy would.
_URL = re.compile(
    r"""
    (?P<scheme>[\w+]+)://
    (?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6>[^/?]+)\]|(?P<host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    $""",
    re.X | re.S,
)


def postgres_target(url: str) -> tuple[list[str], dict[str, str]] | None:
    """``(driver modules to try, connect arguments)`` for a PostgreSQL metadata URL, else None.

    The drivers are the one the URL names (``postgresql+psycopg2://``), else those installed of
    psycopg 3 and psycopg2, in that order (SQLAlchemy 2 uses psycopg 3, 1.4 psycopg2: the
    statements of either may be in the store). The arguments are what SQLAlchemy's psycopg
    dialects pass to ``connect()``: user, password (percent-decoded), host, port, dbname and
    the query's options (``?options=-csearch_path%3Dx``, ``?sslmode=require``). A URL whose
    reading could differ from SQLAlchemy's in any detail (a ``/``, ``?`` or ``#`` in the user
    part, a ``+`` or a repeated key in the query, an encoded host or database name) gives None:
    such a store is opened through SQLAlchemy.
    """
    from urllib.parse import parse_qsl, unquote

    match = _URL.match(url)
    if match is None:
        return None
    parts = match.groupdict()
    base, _, named = parts["scheme"].partition("+")
    if base not in ("postgresql", "postgres") or named not in ("", "psycopg", "psycopg2"):
        return None
    user, password = parts["user"], parts["password"]
    query = parts["query"] or ""
    if (
        any(c in (user or "") + (password or "") for c in "/?#")
        or "+" in query
        or "%" in (parts["host"] or "") + (parts["database"] or "")
        or (parts["port"] and not parts["port"].isdigit())
    ):
        return None
    options = parse_qsl(query, keep_blank_values=True)
    if len({k for k, _ in options}) != len(options):
        return None  # several values of a key (a host list): SQLAlchemy joins them its own way
    given = {
        "user": unquote(user) if user else "",
        "password": unquote(password) if password else "",
        "host": parts["ipv6"] or parts["host"] or "",
        "port": parts["port"] or "",
        "dbname": parts["database"] or "",
    }
    args: dict[str, str] = {k: v for k, v in given.items() if v}
    args.update(options)
    drivers: list[str] = [named] if named else ["psycopg", "psycopg2"]
    drivers = [d for d in drivers if importlib.util.find_spec(d) is not None]
    return (drivers, args) if drivers else None


def open_compiled_postgres(url: str, prefix: str, key: str) -> CompiledStatements | None:
    """The statements a ready PostgreSQL store holds, on plain driver connections, without
    SQLAlchemy; the driver is the one the statements were compiled for. The connections come
    from one pool per driver and URL in this process (as SQLAlchemy's engines, one per URL).

    None when the URL is not a plain PostgreSQL URL (:func:`postgres_target`), the table
    prefix is not lower case (SQLAlchemy quotes such names), no driver is installed, the
    driver refuses an option of the URL, or the store is new, older or holds no statements for
    an installed driver: the caller then opens it through SQLAlchemy (which migrates the store
    and saves the statements under ``<key>.<driver>``).

    Raises:
        BridgeError: the server cannot be reached (refused, timed out, authentication): the
            message SQLAlchemy's path gives, without a second attempt through SQLAlchemy.
    """
    target = postgres_target(url) if prefix == prefix.lower() else None
    if target is None:
        return None
    drivers, args = target
    try:
        pool = _postgres_pool(drivers[0], url, args)
        holder, conn = pool.checkout()
    except Exception as exc:
        operational = getattr(sys.modules.get(drivers[0]), "OperationalError", None)
        if operational is not None and isinstance(exc, operational):
            from zenml_bridge.stores.connect import connection_error

            raise connection_error(url, exc) from None
        return None  # e.g. an option libpq does not know: SQLAlchemy's path says what it is
    try:
        from zenml_bridge.stores.schema import SCHEMA_VERSION

        cursor = conn.cursor()
        cursor.execute(f"SELECT version FROM {prefix}schema_version WHERE id = 1")
        version = cursor.fetchone()
        keys = {f"{key}.{d}": d for d in drivers}
        marks = ", ".join(["%s"] * len(keys))
        cursor.execute(
            f"SELECT key, name, sql, params FROM {prefix}statements WHERE key IN ({marks})",
            tuple(keys),
        )
        rows = cursor.fetchall()
        cursor.close()
        conn.commit()
    except BaseException as exc:
        holder.invalidate()
        if not isinstance(exc, Exception):
            raise
        return None
    holder.close()
    found = {keys[row[0]] for row in rows}
    driver = next((d for d in drivers if d in found), None)
    if version is None or version[0] != SCHEMA_VERSION or driver is None:
        return None
    if driver != drivers[0]:  # the store was made with the other driver (SQLAlchemy 1.4)
        pool.close_idle(keep_none=False)  # the probe's connection: not used from now on
        try:
            pool = _postgres_pool(driver, url, args)
        except Exception:
            return None
    return CompiledStatements(
        _compiled(row[1:] for row in rows if keys[row[0]] == driver),
        pool.checkout,
        sqlite=False,
        error=pool.error,
        per_transaction=True,
        forget=pool.forget,
    )


#: (driver, metadata URL) -> the pool of this process.
_POOLS: dict[tuple[str, str], ConnectionPool] = {}


def _postgres_pool(driver: str, url: str, args: Mapping[str, str]) -> ConnectionPool:
    pool = _POOLS.get((driver, url))
    if pool is None:
        module: Any = importlib.import_module(driver)
        pool = ConnectionPool(lambda: module.connect(**args), error=module.Error)
        pool = _POOLS.setdefault((driver, url), pool)
    return pool


def close_pools(url: str) -> None:
    """Close the idle connections of this process's pools for ``url`` and drop the pools
    (connections checked out now are closed when they are returned)."""
    for driver in ("psycopg", "psycopg2"):
        pool = _POOLS.pop((driver, url), None)
        if pool is not None:
            pool.close_idle()


def _forget_pools() -> None:
    for pool in _POOLS.values():
        pool.forget()


# A forked child never uses (nor closes) its parent's connections, whoever forks.
os.register_at_fork(after_in_child=_forget_pools)


class ConnectionPool:
    """Driver connections checked out per transaction: at most ``limit`` open at once and
    ``keep`` kept idle (SQLAlchemy's defaults: 5 + 10 overflow), a checkout waits up to
    ``timeout`` seconds for a free one, and a connection older than ``recycle`` seconds is
    replaced when it is checked out (SQLAlchemy's ``pool_recycle=3600`` of our engines: a
    firewall or proxy may cut connections that stayed idle for long)."""

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        error: type[Exception] = Exception,
        keep: int = 5,
        limit: int = 15,
        timeout: float = 30,
        recycle: float = 3600,
    ) -> None:
        self._open = connect
        self._recycle = recycle
        #: The driver's base error class.
        self.error = error
        self._keep = keep
        self._limit = limit
        self._timeout = timeout
        self.forget()

    def forget(self) -> None:
        """Drop every connection without closing it (in a forked child: the parent uses them)."""
        #: (connection, when it was opened: time.monotonic())
        self._idle: list[tuple[Any, float]] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self._limit)

    def close_idle(self, keep_none: bool = True) -> None:
        """Close the idle connections; with ``keep_none``, also every one returned later."""
        with self._lock:
            idle, self._idle = self._idle, []
            if keep_none:
                self._keep = 0
        for conn, _ in idle:
            _close(conn)

    def checkout(self) -> tuple[Any, Any]:
        """``(holder, connection)``: ``holder.close()`` returns it, ``holder.invalidate()``
        closes it."""
        if not self._slots.acquire(timeout=self._timeout):
            from zenml_bridge.errors import BridgeError

            raise BridgeError(
                f"All {self._limit} connections of this process to the metadata store stayed in "
                f"use for {self._timeout:.0f} s. Run fewer steps in parallel (--parallel), or "
                "check the database server for blocked transactions."
            )
        with self._lock:
            entry = self._idle.pop() if self._idle else None
        try:
            if entry is not None and time.monotonic() - entry[1] > self._recycle:
                _close(entry[0])
                entry = None
            if entry is None:
                entry = (self._open(), time.monotonic())
        except BaseException:
            self._slots.release()
            raise
        return _Checkout(self, entry), entry[0]

    def _return(self, entry: tuple[Any, float], reuse: bool) -> None:
        with self._lock:
            keep = reuse and len(self._idle) < self._keep
            if keep:
                self._idle.append(entry)
        if not keep:
            _close(entry[0])
        self._slots.release()


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:
        pass


class _Checkout:
    __slots__ = ("_pool", "_entry")

    def __init__(self, pool: ConnectionPool, entry: tuple[Any, float]) -> None:
        self._pool, self._entry = pool, entry

    def close(self) -> None:
        self._pool._return(self._entry, reuse=True)

    def invalidate(self) -> None:
        self._pool._return(self._entry, reuse=False)


class CompiledStatements:
    """Named compiled statements, run in single transactions on a per-thread connection.

    Args:
        sql: name -> (SQL text, parameter names in order for positional drivers, else None).
        connect: returns ``(holder, dbapi_connection)``; the holder (a pooled connection)
            is kept alive while the thread uses the connection.
    """

    def __init__(
        self,
        sql: Compiled,
        connect: Callable[[], tuple[Any, Any]],
        *,
        sqlite: bool,
        error: type[Exception],
        per_transaction: bool = False,
        forget: Callable[[], None] | None = None,
    ) -> None:
        self.sql = sql
        self.sqlite = sqlite
        self._connect = connect
        self._local = threading.local()
        self._error = error
        #: Check a pooled connection out for each transaction and return it after.
        self._per_transaction = per_transaction
        self._forget_pool = forget

    @classmethod
    def from_engine(cls, engine: sa.Engine, statements: Mapping[str, Any]) -> CompiledStatements:
        """Compile Core statements for the engine's dialect; connections from its pool."""
        sql: Compiled = {}
        for name, stmt in statements.items():
            compiled = stmt.compile(dialect=engine.dialect)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            if "POSTCOMPILE" in compiled.string:  # a bug in a statement, not user input
                raise AssertionError(f"statement {name!r} needs execution-time rendering")
            sql[name] = (compiled.string, order)

        sqlite = engine.dialect.name == "sqlite"
        path = sqlite_file(str(engine.url)) if sqlite else None

        def connect() -> tuple[Any, Any]:
            if path is not None:
                # A connection per thread outside the pool: the pool's 5 + 10 connections
                # would otherwise run out with more threads than that.
                return None, _connect_sqlite(path)
            fairy = engine.raw_connection()
            return fairy, fairy.driver_connection

        # loaded_dbapi is SQLAlchemy 2.x; 1.4 has the module as dialect.dbapi.
        dbapi: Any = getattr(engine.dialect, "loaded_dbapi", None) or engine.dialect.dbapi
        return cls(sql, connect, sqlite=sqlite, error=dbapi.Error, per_transaction=path is None)

    def adopt(self, conn: Any) -> None:
        """Use an open DBAPI connection for this thread."""
        self._local.holder, self._local.conn = None, conn

    def _connection(self) -> Any:
        """This thread's DBAPI connection (opened once per thread)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self._local.holder, conn = self._connect()
            self._local.conn = conn
        return conn

    def _release(self) -> None:
        """Return a per-transaction connection to the pool."""
        holder = getattr(self._local, "holder", None)
        self._local.conn = self._local.holder = None
        if holder is not None:
            holder.close()

    def forget_connections(self) -> None:
        """Abandon this process's connections without closing them (in a forked child: the
        parent still uses them)."""
        self._local = threading.local()
        if self._forget_pool is not None:
            self._forget_pool()

    def _drop_connection(self) -> None:
        holder = getattr(self._local, "holder", None)
        conn = getattr(self._local, "conn", None)
        self._local.conn = self._local.holder = None
        try:
            if holder is not None:
                holder.invalidate()
            elif conn is not None:
                conn.close()
        except Exception:
            pass

    def _execute(self, cursor: Any, ops: Ops) -> Any:
        for name, rows in ops:
            sql, order = self.sql[name]
            if order is None:
                params: list[Any] = [dict(r) for r in rows]
            else:
                params = [tuple(map(r.__getitem__, order)) for r in rows]
            if len(params) == 1:
                cursor.execute(sql, params[0])
            elif params:
                cursor.executemany(sql, params)
        return cursor

    def run(
        self,
        ops: Ops,
        *,
        write: bool = True,
        fetch_all: bool = False,
        then: Callable[[Any, Callable[[Ops], Any]], Ops] | None = None,
    ) -> Any:
        """Run statements in one transaction (``write``) or one read; retry when busy.

        Each op is ``(statement name, rows)``; several rows use ``executemany``. Returns the
        first row of a read (all rows with ``fetch_all``), or the row count of a write's last
        statement. ``then(cursor, execute)`` sees the cursor of the last op (its row count, or
        the row of a SELECT), may run more ops in the same transaction with ``execute(ops)``
        (which returns the cursor) and returns the ops to run last; an exception it raises
        rolls the transaction back.
        """
        delay = 0.01
        for attempt in range(12):
            conn = self._connection()
            try:
                cursor = conn.cursor()
                if self.sqlite and write:
                    # Take the write lock first (see stores.connect): no deadlock on upgrade.
                    cursor.execute("BEGIN IMMEDIATE")
                self._execute(cursor, ops)
                if then is not None:
                    more = then(cursor, functools.partial(self._execute, cursor))
                    self._execute(cursor, more)
                if write:
                    row = cursor.rowcount
                else:
                    row = cursor.fetchall() if fetch_all else cursor.fetchone()
                cursor.close()
                if write or not self.sqlite:
                    conn.commit()  # a read on a server database ends its snapshot too
                if self._per_transaction:
                    self._release()
                return row
            except self._error as exc:
                try:
                    conn.rollback()
                except Exception:
                    self._drop_connection()
                text = str(exc).lower()
                broken = any(marker in text for marker in BROKEN)
                if broken:
                    self._drop_connection()
                elif self._per_transaction:
                    self._release()
                if attempt == 11 or not (broken or is_transient_text(text)):
                    raise
            except BaseException:
                # A signal (KeyboardInterrupt, a termination raised by a handler) in the middle
                # of a transaction: end it, so that the failure can still be recorded.
                try:
                    conn.rollback()
                    if self._per_transaction:
                        self._release()
                except Exception:
                    self._drop_connection()
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")  # pragma: no cover
