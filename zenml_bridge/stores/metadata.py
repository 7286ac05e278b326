"""The metadata store: runs, step runs, artifacts, lineage and cache entries on SQLAlchemy Core.

SQLite (the embedded default) runs in WAL mode with a busy timeout, write transactions start
with ``BEGIN IMMEDIATE`` (so two writers never deadlock on a lock upgrade) and reads run as
single autocommit statements. PostgreSQL (``postgresql://``, driver psycopg; psycopg2 on
SQLAlchemy 1.4) and MySQL/MariaDB (``mysql://``/``mariadb://``, driver PyMySQL) work from the same
code, on SQLAlchemy 1.4 and 2.x. A step is recorded in one transaction of at most four statements.

Example:
    >>> store = MetadataStore("sqlite:////tmp/zb/metadata.db")   # doctest: +SKIP
    >>> store.list_runs(limit=5)                                 # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from zenml_bridge.errors import BridgeError, did_you_mean
from zenml_bridge.stores import statements
from zenml_bridge.stores.fastpath import (
    CompiledStatements,
    close_pools,
    open_compiled_postgres,
    open_compiled_sqlite,
    sqlite_file,
)
from zenml_bridge.stores.statements import DONE, STEP_COLUMNS
from zenml_bridge.stores.statements import VERSION as STATEMENTS_VERSION

if TYPE_CHECKING:
    import sqlalchemy as sa

    from zenml_bridge.stores.schema import Tables
else:
    sa = None  # imported by _sqlalchemy() on first use: a run on a ready SQLite store needs none

T = TypeVar("T")
Row = dict[str, Any]

_JSON_COLUMNS = {"parameters", "links", "outputs", "metadata", "metrics"}
_ENGINES: dict[str, Any] = {}
#: Run ids are primary keys of at most this many characters on every database.
MAX_RUN_ID = 255


def _sqlalchemy() -> Any:
    global sa
    if sa is None:
        import sqlalchemy

        sa = sqlalchemy
    return sa


def describe_url(url: str) -> str:
    from zenml_bridge.stores.connect import describe_url as describe

    return describe(url)


def _is_transient(exc: BaseException) -> bool:
    from zenml_bridge.stores.connect import is_transient

    return is_transient(exc)  # type: ignore[arg-type]


def _dumps(value: Any) -> str:
    return _JSON(value)


#: ``json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)`` without building an
#: encoder for every column (the encoder holds no state between calls).
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def _dumps_mapping(value: Mapping[str, Any] | None) -> str:
    """:func:`_dumps` of a mapping column (``None`` is ``{}``); most steps record none."""
    return _dumps(dict(value)) if value else "{}"


def _row(row: Any) -> Row:
    data = dict(row._mapping)
    for key in _JSON_COLUMNS.intersection(data):
        if isinstance(data[key], str):
            data[key] = _json_column(data, key)
    return data


def _json_column(data: Row, key: str) -> Any:
    """A JSON column of a row; a damaged value is a BridgeError naming the row, not a traceback."""
    try:
        return json.loads(data[key])
    except (ValueError, RecursionError) as exc:
        ids = ("run_id", "step", "artifact_id")
        where = ", ".join(f"{k} {data[k]!r}" for k in ids if k in data)
        raise BridgeError(
            f"The metadata store holds a damaged record: column '{key}' of the row with "
            f"{where or 'no id'} is not valid JSON ({exc}). Repair or delete that row, or "
            "restore the database from a backup."
        ) from None


def find_by_prefix(conn: Any, table: Any, column: Any, ref: str) -> tuple[Any, list[str], bool]:
    """The row of ``table`` whose ``column`` is ``ref``, or the only one starting with it.

    Otherwise ``(None, the 1,000 newest ids by created_at, whether several matched)``, for a
    "did you mean" message.
    """
    rows = conn.execute(
        sa.select(table).where(column.startswith(ref, autoescape=True)).limit(2)
    ).all()
    exact = [r for r in rows if getattr(r, column.name) == ref]
    if exact or len(rows) == 1:
        return (exact or rows)[0], [], False
    newest = sa.select(column).order_by(table.c.created_at.desc()).limit(1000)
    return None, list(conn.execute(newest).scalars()), bool(rows)


class MetadataStore:
    """Records of runs in a SQL database given by a SQLAlchemy URL.

    Args:
        url: ``sqlite:///path/metadata.db``, ``postgresql://user@host:5432/db``,
            ``mysql://root@host:3306/db`` (``mariadb://`` too).
        table_prefix: prefix of every table name (several stores may share a database).
    """

    def __init__(self, url: str, *, table_prefix: str = "zb_") -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]*", table_prefix):
            raise BridgeError(f"Table prefix {table_prefix!r}: use letters, digits and '_'.")
        self.url = url
        self.table_prefix = table_prefix
        self.dialect = _backend(url)
        self._engine: Any = None
        self._t: Tables | None = None
        self._known_versions: set[str] = set()
        #: run id -> IR sha256 of the runs begun by this process (recorded per step run).
        self._run_ir: dict[str, str] = {}
        key = self._statements_key()
        # A ready SQLite or PostgreSQL store holds its compiled hot-path statements: use them
        # without importing SQLAlchemy (most of a short run's start-up time otherwise).
        fast = None
        if self.dialect == "sqlite":
            fast = open_compiled_sqlite(url, table_prefix, key)
        elif self.dialect == "postgresql" and url not in _ENGINES:
            # (With an engine for this URL in the process already, its pool serves.)
            fast = open_compiled_postgres(url, table_prefix, key)
        if fast is None:
            fast = self._open_with_sqlalchemy(key)
        self._fast = fast.run
        self._statements_handle = fast

    def after_fork(self) -> None:
        """In a forked child: abandon the parent's connections (never close them; the parent
        still uses them) so that this process opens its own."""
        self._statements_handle.forget_connections()
        if self._engine is not None:
            self._engine.dispose(close=False)

    @staticmethod
    def _statements_key() -> str:
        from zenml_bridge.stores.schema import SCHEMA_VERSION

        return f"s{SCHEMA_VERSION}.v{STATEMENTS_VERSION}"

    def _open_with_sqlalchemy(self, key: str) -> CompiledStatements:
        from zenml_bridge.stores.connect import connection_error

        sa = _sqlalchemy()
        try:
            self._ensure_schema()
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if _is_transient(exc):
                raise
            raise connection_error(self.url, exc) from None
        except sa.exc.DatabaseError as exc:
            if self.dialect != "sqlite":
                raise
            raise connection_error(self.url, exc) from None  # e.g. "file is not a database"
        compiled = CompiledStatements.from_engine(
            self.engine, statements.hot_path(self.t, self.dialect)
        )
        if self.dialect == "sqlite" and not is_read_only(self.url):
            self._save_statements(key, compiled)
        elif self.dialect == "postgresql":
            # Per driver: psycopg 3 statements carry casts (render_bind_cast) psycopg2's lack.
            # Only a cache: a role or server that may not write (a standby, a read-only role)
            # opens the store without it.
            try:
                self._save_statements(f"{key}.{self.engine.dialect.driver}", compiled)
            except sa.exc.DBAPIError:
                pass
        return compiled

    def _save_statements(self, key: str, compiled: CompiledStatements) -> None:
        table = self.t.statements
        rows = [
            {"key": key, "name": name, "sql": sql, "params": json.dumps(order)}
            for name, (sql, order) in sorted(compiled.sql.items())
        ]

        def work(conn: Any) -> None:
            if conn.execute(sa.select(table.c.name).where(table.c.key == key).limit(1)).first():
                return
            # Two processes opening a new store at once may both get here: keep the first.
            conn.execute(self._insert(table), rows)

        self._write(work)

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine (created, and SQLAlchemy imported, on first use)."""
        if self._engine is None:
            _sqlalchemy()
            from zenml_bridge.stores.connect import create_engine

            engine = _ENGINES.get(self.url)
            if engine is None:
                engine = _ENGINES[self.url] = create_engine(self.url)
            self._engine = engine
        return self._engine

    @property
    def t(self) -> Tables:
        """The tables of this store's prefix."""
        if self._t is None:
            _sqlalchemy()
            from zenml_bridge.stores.schema import tables

            self._t = tables(self.table_prefix, self.dialect)
        return self._t

    def __repr__(self) -> str:
        return f"MetadataStore({describe_url(self.url)!r})"

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect().execution_options(zb_read=True) as conn:
            yield conn

    def _write(self, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work`` in one write transaction, retrying when the database is busy."""
        delay = 0.01
        for attempt in range(12):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except sa.exc.DBAPIError as exc:
                if attempt == 11 or not _is_transient(exc):
                    raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _ensure_schema(self) -> None:
        from zenml_bridge.stores.schema import SCHEMA_VERSION

        version = self._schema_version()
        if version == SCHEMA_VERSION:
            return
        if version is not None and version > SCHEMA_VERSION:
            raise BridgeError(
                f"The metadata store {describe_url(self.url)} has schema version {version}; this "
                f"zenml-bridge knows up to {SCHEMA_VERSION}. Upgrade zenml-bridge."
            )
        if is_read_only(self.url):
            problem = f"has schema version {version} (this zenml-bridge: {SCHEMA_VERSION})"
            raise read_only_error(self.url, problem if version else "holds no runs yet")
        from zenml_bridge.stores.schema import migrate, mysql_lock

        def work(conn: Any) -> None:
            migrate(conn, self.t, self.dialect, self.table_prefix)

        if self.dialect == "mysql":
            # The named lock is held until the migration has committed (item: 32 processes
            # opening a new MariaDB store at once).
            with mysql_lock(self.engine, self.table_prefix):
                self._write(work)
        else:
            self._write(work)

    def _schema_version(self) -> int | None:
        table = self.t.schema_version
        try:
            with self._read() as conn:
                return conn.execute(sa.select(table.c.version).where(table.c.id == 1)).scalar()
        except sa.exc.ProgrammingError:
            return None  # PostgreSQL / MySQL: no such table yet
        except sa.exc.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise

    def _insert(self, table: sa.Table, keys: Sequence[str] = (), update: Sequence[str] = ()) -> Any:
        """INSERT that ignores (no ``update``) or overwrites (``update``) an existing key."""
        return statements.insert(self.dialect, table, keys, update)

    # -- runs -----------------------------------------------------------------------------------

    def begin_run(
        self,
        *,
        run_id: str,
        pipeline: str,
        ir_sha256: str,
        ir_json: Callable[[], str],
        parameters: Mapping[str, Any],
        git_sha: str | None = None,
        git_dirty: bool | None = None,
        code_archive_sha256: str | None = None,
        backend: str = "local",
        links: Mapping[str, str] | None = None,
        new_attempt: bool = False,
    ) -> bool:
        """Record a run as ``running``; True when this call created it.

        A second call for the same id with the same pipeline and IR changes nothing and returns
        False. A run id belongs to one pipeline version: a call with another pipeline, or with
        another IR sha256, raises a BridgeError, unless ``new_attempt`` is True (an
        orchestrator that explicitly re-runs the run with a new IR, e.g. ``run-step
        --new-attempt`` after an Airflow Clear): then the run records the new IR sha256, and
        each step run records the IR it ran.

        Raises:
            BridgeError: the run id is too long, or belongs to another pipeline or IR.
        """
        check_run_id(run_id)
        now = time.time()
        known = ir_sha256 in self._known_versions
        ops: list[tuple[str, Sequence[Mapping[str, Any]]]] = []
        if not known:
            ops.append(("pipeline", [{"name": pipeline, "created_at": now}]))
            row = {"ir_sha256": ir_sha256, "pipeline": pipeline, "created_at": now}
            ops.append(("version", [{**row, "ir_json": ir_json()}]))
        run_row = {
            "run_id": run_id,
            "pipeline": pipeline,
            "ir_sha256": ir_sha256,
            "status": "running",
            "parameters": _dumps(dict(parameters)),
            "git_sha": git_sha,
            "git_dirty": git_dirty,
            "code_archive_sha256": code_archive_sha256,
            "links": _dumps(dict(links or {})),
            "backend": backend,
            "started_at": now,
            "ended_at": None,
            "reason": None,
            "heartbeat_at": now,
        }
        ops.append(("run", [run_row]))
        # The row count of the last statement: 0 when the run already existed (ignored).
        created = self._fast(ops)
        self._known_versions.add(ir_sha256)
        self._run_ir[run_id] = ir_sha256
        if created:
            return True
        existing = self.run_state(run_id)
        if existing is None:  # pragma: no cover - deleted in between
            return False
        if existing["pipeline"] != pipeline:
            raise BridgeError(
                f"The run id '{run_id}' belongs to pipeline '{existing['pipeline']}', not "
                f"'{pipeline}'. A run id is used by one pipeline only: choose a new run id."
            )
        if existing["ir_sha256"] != ir_sha256:
            if not new_attempt:
                raise BridgeError(
                    f"Run '{run_id}' of pipeline '{pipeline}' was started with IR sha256 "
                    f"{existing['ir_sha256']}, but this step comes with IR sha256 {ir_sha256} "
                    "(the pipeline was changed and deployed again while the run existed). "
                    "Start a new run (a new run id), or pass --new-attempt to run-step to "
                    "re-run this run with the new IR."
                )
            self.update_run(run_id, ir_sha256=ir_sha256)
        return False

    def run_state(self, run_id: str) -> Row | None:
        """The status, IR sha256, pipeline and reason of a run (one indexed read)."""
        row = self._fast([("run_get", [{"rid": run_id}])], write=False)
        if row is None:
            return None
        return dict(zip(("status", "ir_sha256", "pipeline", "reason"), row))

    def reopen_run(self, run_id: str) -> bool:
        """Set a ``failed`` run back to ``running`` (a new attempt of one of its steps starts,
        e.g. an orchestrator retry after the run was found lost); True when it was failed."""
        return bool(self._fast([("reopen", [{"rid": run_id, "t": time.time()}])]))

    def update_run(self, run_id: str, **values: Any) -> None:
        """Set columns of a run (``links`` and ``parameters`` are given as mappings)."""
        for key in _JSON_COLUMNS.intersection(values):
            values[key] = _dumps(values[key])
        runs = self.t.runs
        self._write(lambda c: c.execute(runs.update().where(runs.c.run_id == run_id), values))

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        git_dirty: bool | None = None,
        reason: str | None = None,
        **values: Any,
    ) -> bool:
        """Mark a running run ``completed``, ``failed``, ``stopped`` or ``cancelled`` (and set
        ``git_dirty``, ``reason``, ``links``, ...); True when it was running.

        A run that is no longer running (cancelled by ``runs cancel``, found lost) keeps its
        state: the first end recorded wins.
        """
        if values:
            runs = self.t.runs
            for key in _JSON_COLUMNS.intersection(values):
                values[key] = _dumps(values[key])
            values.update(status=status, ended_at=time.time(), git_dirty=git_dirty, reason=reason)
            stmt = runs.update().where(runs.c.run_id == run_id, runs.c.status == "running")
            return bool(self._write(lambda c: c.execute(stmt, values).rowcount))
        row = {"rid": run_id, "st": status, "end": time.time(), "dirty": git_dirty, "why": reason}
        return bool(self._fast([("finish", [row])]))

    def complete_run_if_done(self, run_id: str, n_steps: int) -> bool:
        """Mark the running run completed when all ``n_steps`` steps finished; True when this
        call did.

        Called after the step's own transaction committed, so the process whose step commits
        last always sees every step finished.
        """
        row = {"rid": run_id, "n": n_steps, "end": time.time()}
        return bool(self._fast([("complete", [row])]))

    # -- liveness ---------------------------------------------------------------------------------

    def heartbeat(self, run_ids: Sequence[str], steps: Sequence[tuple[str, str]] = ()) -> set[str]:
        """Say that these runs (and running steps) are alive; returns the run ids that are no
        longer ``running`` in the store (cancelled or found lost meanwhile)."""
        now = time.time()
        gone = set()
        for run_id in run_ids:
            if not self._fast([("beat_run", [{"rid": run_id, "t": now}])]):
                gone.add(run_id)
        if steps:
            rows = [{"rid": r, "s": s, "t": now} for r, s in steps]
            self._fast([("beat_step", rows)])
        return gone

    def sweep_lost(self, lost_after: float) -> list[str]:
        """Mark runs and steps whose processes stopped saying they are alive as ``failed``.

        - a run of the local runner (one process owns the whole run) whose heartbeat is older
          than ``lost_after`` seconds;
        - a ``running`` step of any run (an entrypoint process: Airflow task, Kubeflow pod)
          whose heartbeat is older than that, and its run.

        The reason recorded is ``lost (no heartbeat since <UTC time>)``. Returns the run ids
        marked. Runs of orchestrators between two tasks have no running step and are left to
        the orchestrator.
        """
        cut = time.time() - lost_after
        runs = self._fast([("stale_runs", [{"cut": cut}])], write=False, fetch_all=True)
        steps = self._fast([("stale_steps", [{"cut": cut}])], write=False, fetch_all=True)
        lost: dict[str, float] = {}
        for run_id, backend, beat in runs:
            if backend == "local":
                lost[run_id] = float(beat)
        stale_steps: dict[str, list[tuple[str, float]]] = {}
        for run_id, step, beat in steps:
            stale_steps.setdefault(run_id, []).append((step, float(beat)))
            lost.setdefault(run_id, float(beat))
        marked = []
        for run_id, beat in lost.items():
            reason = f"lost (no heartbeat since {_utc(beat)})"
            if self._end_run(run_id, "failed", reason, cut=cut, steps=stale_steps.get(run_id)):
                marked.append(run_id)
        return marked

    def cancel_run(self, run_id: str, reason: str) -> bool:
        """Mark a running run ``cancelled`` and its running or retrying steps ``failed`` with
        ``reason``; True when the run was running."""
        return self._end_run(run_id, "cancelled", reason)

    def _end_run(
        self,
        run_id: str,
        status: str,
        reason: str,
        *,
        cut: float | None = None,
        steps: Sequence[tuple[str, float]] | None = None,
    ) -> bool:
        runs, step_runs = self.t.runs, self.t.step_runs
        now = time.time()

        def work(conn: Any) -> bool:
            query = runs.update().where(runs.c.run_id == run_id, runs.c.status == "running")
            if cut is not None and steps is None:
                # Only while still stale: a heartbeat in between means it is alive.
                beat = sa.func.coalesce(runs.c.heartbeat_at, runs.c.started_at)
                query = query.where(beat < cut)
            done = conn.execute(query.values(status=status, ended_at=now, reason=reason))
            if not done.rowcount:
                return False
            query = step_runs.update().where(step_runs.c.run_id == run_id)
            if steps is None:  # the whole run is over: its open steps too
                query = query.where(step_runs.c.status.in_(("running", "retrying")))
            else:  # only the lost steps: other step processes of the run may be alive
                beat = sa.func.coalesce(step_runs.c.heartbeat_at, step_runs.c.started_at)
                query = query.where(
                    step_runs.c.step.in_([name for name, _ in steps]),
                    step_runs.c.status == "running",
                    beat < cut,
                )
            conn.execute(query.values(status="failed", error=reason, ended_at=now))
            return True

        return bool(self._write(work))

    def get_run(self, run_id: str) -> Row | None:
        runs = self.t.runs
        with self._read() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
        return _row(row) if row is not None else None

    def resolve_run(self, ref: str) -> Row:
        """A run by id, unique id prefix or ``latest``; BridgeError with "did you mean"."""
        runs = self.t.runs
        with self._read() as conn:
            if ref == "latest":
                row = conn.execute(
                    sa.select(runs).order_by(runs.c.started_at.desc()).limit(1)
                ).first()
                if row is None:
                    raise BridgeError(
                        "There are no runs yet in the metadata store "
                        f"{describe_url(self.url)}. Start one with `zenml-bridge run SRC`."
                    )
                return _row(row)
            row = conn.execute(sa.select(runs).where(runs.c.run_id == ref)).first()
            if row is None:
                rows = conn.execute(
                    sa.select(runs).where(runs.c.run_id.startswith(ref, autoescape=True)).limit(2)
                ).all()
                row = rows[0] if len(rows) == 1 else None
            if row is not None:
                return _row(row)
            if len(rows) > 1:
                raise BridgeError(
                    f"The run id prefix {ref!r} matches several runs ({rows[0].run_id}, "
                    f"{rows[1].run_id}, ...). Give more characters of the run id."
                )
            recent = conn.execute(
                sa.select(runs.c.run_id).order_by(runs.c.started_at.desc()).limit(500)
            ).scalars()
            ids = list(recent)
        raise BridgeError(
            f"There is no run {ref!r} in the metadata store {describe_url(self.url)}."
            + did_you_mean(ref, ids)
            + " List runs with `zenml-bridge runs list`."
        )

    def list_runs(self, limit: int = 20, pipeline: str | None = None) -> list[Row]:
        runs = self.t.runs
        query = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        if pipeline:
            query = query.where(runs.c.pipeline == pipeline)
        with self._read() as conn:
            return [_row(r) for r in conn.execute(query)]

    def get_ir_json(self, ir_sha256: str) -> str | None:
        versions = self.t.pipeline_versions
        query = sa.select(versions.c.ir_json).where(versions.c.ir_sha256 == ir_sha256)
        with self._read() as conn:
            return conn.execute(query).scalar()

    # -- steps ----------------------------------------------------------------------------------

    def step_runs(self, run_id: str) -> dict[str, Row]:
        """Step runs of a run by step name."""
        rows = self._fast([("steps_of_run", [{"rid": run_id}])], write=False, fetch_all=True)
        result = {}
        for values in rows:
            data = dict(zip(STEP_COLUMNS, values))
            for key in _JSON_COLUMNS.intersection(data):
                data[key] = _json_column(data, key)
            result[data["step"]] = data
        return result

    def lookup_cache(self, cache_key: str) -> dict[str, Any] | None:
        """The outputs recorded under ``cache_key`` (name -> artifact info), or None."""
        row = self._fast([("cache_get", [{"k": cache_key}])], write=False)
        return _cache_outputs(row[0]) if row else None

    def record_step(
        self,
        *,
        run_id: str,
        step: str,
        status: str,
        outputs: Mapping[str, Mapping[str, Any]],
        new_artifacts: Sequence[Mapping[str, Any]] = (),
        consumed: Sequence[tuple[str, str]] = (),
        cache_key: str | None = None,
        write_cache: bool = False,
        cache_outputs: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        error: str | None = None,
        attempt: int = 1,
        started_at: float,
        ended_at: float,
        ir_sha256: str | None = None,
        replace_completed: bool = False,
    ) -> Row:
        """Record a step in ONE transaction: the step run, new artifacts, consumed artifacts
        (lineage) and its cache entry (whose outputs JSON is ``cache_outputs`` when given: the
        outputs plus what a cache hit restores). Returns the step run as it is after the
        transaction (``status``, ``outputs``, ``ir_sha256``).

        A completed or cached record of the same IR is kept: a failed, retrying or running
        record of another attempt is not written over it (unless ``replace_completed``: the
        tracker failed after the step), and a second completed attempt with the same output
        hashes is discarded.

        Raises:
            BridgeError: another attempt of this step completed at the same time with different
                output content (nothing of this attempt is recorded).
        """
        outputs_json = _dumps(dict(outputs))
        ir_sha = ir_sha256 or self._run_ir.get(run_id)
        step_row = {
            "run_id": run_id,
            "step": step,
            "status": status,
            "cache_key": cache_key,
            "outputs": outputs_json,
            "parameters": _dumps_mapping(parameters),
            "metadata": _dumps_mapping(metadata),
            "metrics": _dumps_mapping(metrics),
            "error": error,
            "attempt": attempt,
            "started_at": started_at,
            "ended_at": ended_at,
            "ir_sha256": ir_sha,
            "heartbeat_at": ended_at,
        }
        consumer_rows = [
            {"artifact_id": a, "run_id": run_id, "step": step, "input": name}
            for a, name in consumed
        ]
        more: list[tuple[str, Sequence[Mapping[str, Any]]]] = []
        if new_artifacts:
            more.append(("artifact", new_artifacts))
        if consumer_rows:
            more.append(("consumer", consumer_rows))
        if write_cache and cache_key:
            more.append(
                (
                    "cache",
                    [
                        {
                            "cache_key": cache_key,
                            "run_id": run_id,
                            "step": step,
                            # the very outputs (nothing else to restore): encoded once
                            "outputs": outputs_json
                            if cache_outputs is None or cache_outputs is outputs
                            else _dumps(dict(cache_outputs)),
                            "created_at": ended_at,
                        }
                    ],
                )
            )
        first = "step_force" if replace_completed else "step"
        get = ("step_get", [{"rid": run_id, "s": step}])
        # SQLite and PostgreSQL report 0 rows when the conditional upsert kept the record:
        # only then is it read. MySQL counts a kept row as found: it is always read.
        counted = self.dialect != "mysql"
        ops: list[tuple[str, Sequence[Mapping[str, Any]]]] = [(first, [step_row])]
        if not counted:
            ops.append(get)
        current: dict[str, Any] = {}

        def then(cursor: Any, execute: Callable[[Any], Any]) -> Any:
            if counted:
                if cursor.rowcount == 1:  # this attempt's record is the one in the store
                    current.update(status=status, outputs=outputs, ir_sha256=ir_sha)
                    return more
                row = execute([get]).fetchone()
            else:
                row = cursor.fetchone()
            current.update(status=row[0], outputs=json.loads(row[1]), ir_sha256=row[2])
            if row[0] == status and row[1] == outputs_json and row[2] == ir_sha:
                return more  # this attempt's record is the one in the store
            if status in DONE and row[0] in DONE:
                if _hashes(row[1]) == _hashes(outputs_json):
                    return ()  # an identical attempt won first: discard this one
                raise BridgeError(
                    f"Step '{step}' of run {run_id} was completed by another attempt at the "
                    "same time, with different output content (this attempt's outputs "
                    f"{_hashes(outputs_json)}, recorded {_hashes(row[1])}). The recorded "
                    "outputs are kept. Two copies of the task ran at once (a duplicate or "
                    "zombie task of the orchestrator) and the step is not deterministic."
                )
            return ()  # a completed record is kept; this attempt's record was not written

        self._fast(ops, then=then)
        return current

    def mark_step_running(
        self,
        *,
        run_id: str,
        step: str,
        attempt: int,
        parameters: Mapping[str, Any] | None = None,
        ir_sha256: str | None = None,
    ) -> Row:
        """Record that a step process started an attempt (status ``running``, with a
        heartbeat); a completed record is kept. Returns the record as it is after."""
        now = time.time()
        return self.record_step(
            run_id=run_id,
            step=step,
            status="running",
            outputs={},
            parameters=parameters,
            attempt=attempt,
            started_at=now,
            ended_at=now,
            ir_sha256=ir_sha256,
        )

    # -- artifacts ------------------------------------------------------------------------------

    def list_artifacts(self, limit: int = 50, run_id: str | None = None) -> list[Row]:
        arts = self.t.artifacts
        query = sa.select(arts).order_by(arts.c.created_at.desc()).limit(limit)
        if run_id:
            query = query.where(arts.c.run_id == run_id)
        with self._read() as conn:
            return [_row(r) for r in conn.execute(query)]

    def resolve_artifact(self, ref: str) -> Row:
        """An artifact by id or unique id prefix; BridgeError with "did you mean"."""
        arts = self.t.artifacts
        with self._read() as conn:
            row, ids, several = find_by_prefix(conn, arts, arts.c.artifact_id, ref)
        if row is not None:
            return _row(row)
        ambiguous = " The prefix matches several; give more characters." if several else ""
        raise BridgeError(
            f"There is no artifact {ref!r} in the metadata store {describe_url(self.url)}."
            + ambiguous
            + did_you_mean(ref, ids)
            + " List artifacts with `zenml-bridge artifacts list`."
        )

    def consumers(self, artifact_id: str) -> list[Row]:
        """Step runs that read the artifact: run id, step, input name."""
        cons = self.t.consumers
        query = (
            sa.select(cons)
            .where(cons.c.artifact_id == artifact_id)
            .order_by(cons.c.run_id, cons.c.step)
        )
        with self._read() as conn:
            return [_row(r) for r in conn.execute(query)]

    def cache_reuses(self, artifact_id: str) -> list[Row]:
        """Cached step runs that reused the artifact as their output (run id, step)."""
        steps = self.t.step_runs
        pattern = f'%"id":"{artifact_id}"%'
        query = (
            sa.select(steps.c.run_id, steps.c.step)
            .where(steps.c.status == "cached", steps.c.outputs.like(pattern))
            .order_by(steps.c.started_at)
        )
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def cache_entries(self) -> int:
        with self._read() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(self.t.cache)).scalar()
        return int(count or 0)

    def drop_tables(self) -> None:
        """Drop every table of this store (tests and `stack` clean-up)."""
        with self.engine.begin() as conn:
            self.t.metadata.drop_all(conn)


def check_run_id(run_id: str) -> None:
    """Refuse a run id the stores cannot keep (before anything is written)."""
    if not run_id or len(run_id) > MAX_RUN_ID:
        what = "empty" if not run_id else f"{len(run_id)} characters long"
        raise BridgeError(
            f"The run id {run_id[:40]!r}{'...' if len(run_id) > 40 else ''} is {what}; a run "
            f"id has 1 to {MAX_RUN_ID} characters. Choose a shorter --run-id (or leave it out "
            "for a generated one)."
        )


def _hashes(outputs_json: str | None) -> dict[str, str]:
    outputs = json.loads(outputs_json or "{}")
    return {name: info.get("sha256", "") for name, info in outputs.items()}


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _cache_outputs(text: str) -> dict[str, Any] | None:
    """A cache entry's outputs; a damaged entry is a miss (the fresh execution replaces it)."""
    try:
        outputs = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return outputs if isinstance(outputs, dict) else None


def as_recorded(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (a step's metadata) as the store gives them back: JSON, other values as
    their ``str``."""
    return json.loads(_dumps_mapping(values)) if values else {}


def close_connections(url: str) -> None:
    """Close this process's idle connections to the store at ``url`` (SQLAlchemy's engine and
    the PostgreSQL fast path's pool); a later use opens new ones. For long-lived processes
    that are done with a store, e.g. a test that drops its database."""
    engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()
    close_pools(url)


def is_read_only(url: str) -> bool:
    """Whether ``url`` opens a SQLite store read-only (see ``cli.common.open_store``)."""
    return url.startswith("sqlite:///file:") and "mode=ro" in url


def check_writable(url: str) -> None:
    """Refuse, with a message, a SQLite store this process cannot write (a read-only mount, mode
    0444, another user's folder): SQLite would open it read-only and fail at the first write.

    Raises:
        BridgeError: naming the file, what still works and how to fix it.
    """
    path = sqlite_file(url)
    if path is None or not os.path.isfile(path):
        return
    if os.access(path, os.W_OK) and os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
        return
    raise BridgeError(
        f"The SQLite metadata store {path} is read-only here (the file or its folder cannot be "
        "written), and this command records runs in it. `zenml-bridge runs list/show` and "
        "`artifacts list/show` still read it. Make the file and its folder writable, or set "
        "ZENML_BRIDGE_METADATA_URL to a writable store."
    )


def read_only_error(url: str, problem: str) -> BridgeError:
    """A BridgeError for a store opened read-only that would need a write (``problem``)."""
    from urllib.parse import unquote

    path = unquote(url[len("sqlite:///file:") :].partition("?")[0])
    return BridgeError(
        f"The SQLite metadata store {path} is read-only here and {problem}; creating or "
        "upgrading its tables needs a write. Open it once where it is writable (any "
        "zenml-bridge command does), or list a writable copy "
        "(ZENML_BRIDGE_METADATA_URL=sqlite:///COPY.db)."
    )


def _backend(url: str) -> str:
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    return {"mariadb": "mysql", "postgres": "postgresql"}.get(scheme, scheme)
