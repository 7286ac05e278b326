"""The metadata store's hot-path statements as SQLAlchemy Core constructs, per dialect.

Compiled once per store (``fastpath.CompiledStatements.from_engine``) and saved in it, so that a
process opening a ready store runs them without importing SQLAlchemy. SQLAlchemy is imported
by the functions here, never at import time.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

    from zenml_bridge.stores.schema import Tables

#: Bump when the hot-path statements change: stores then compile and save them again.
VERSION = 4
#: Columns of a step run, in the order the hot-path read returns them.
STEP_COLUMNS = (
    "run_id",
    "step",
    "status",
    "cache_key",
    "outputs",
    "parameters",
    "metadata",
    "metrics",
    "error",
    "attempt",
    "started_at",
    "ended_at",
    "ir_sha256",
)
#: Step states that are final successes: a record in one of them is never replaced by a
#: failed, retrying or running record of a later (or concurrent) attempt of the same IR.
DONE = ("completed", "cached")


def insert(
    dialect: str, table: sa.Table, keys: Sequence[str] = (), update: Sequence[str] = ()
) -> Any:
    """INSERT that ignores (no ``update``) or overwrites (``update``) an existing key."""
    import sqlalchemy as sa

    if dialect in ("sqlite", "postgresql"):
        # Import only the dialect in use: each costs tens of milliseconds.
        module: Any = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
        stmt = module.insert(table)
        if not update:
            return stmt.on_conflict_do_nothing()
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
        )
    from sqlalchemy.dialects.mysql import insert as mysql_insert

    if not update:
        return sa.insert(table).prefix_with("IGNORE")
    upsert: Any = mysql_insert(table)
    return upsert.on_duplicate_key_update({c: upsert.inserted[c] for c in update})


def hot_path(t: Tables, dialect: str) -> dict[str, Any]:
    """The hot-path statements by name (compiled once per store and saved in it)."""
    import sqlalchemy as sa

    # Constants as SQL literals: a compiled hot-path statement takes only named parameters.
    running: Any = sa.literal_column("'running'")
    failed: Any = sa.literal_column("'failed'")
    step_cols = [c.name for c in t.step_runs.c if c.name not in ("run_id", "step")]
    art_cols = [c.name for c in t.artifacts.c if c.name != "artifact_id"]
    cache_cols = [c.name for c in t.cache.c if c.name != "cache_key"]
    return {
        "pipeline": insert(dialect, t.pipelines),
        "version": insert(dialect, t.pipeline_versions),
        "run": insert(dialect, t.runs),
        "step": _step_upsert(t, dialect, step_cols),
        "step_force": insert(dialect, t.step_runs, ("run_id", "step"), step_cols),
        "step_get": sa.select(
            t.step_runs.c.status, t.step_runs.c.outputs, t.step_runs.c.ir_sha256
        ).where(
            t.step_runs.c.run_id == sa.bindparam("rid"),
            t.step_runs.c.step == sa.bindparam("s"),
        ),
        "artifact": insert(dialect, t.artifacts, ("artifact_id",), art_cols),
        "consumer": insert(dialect, t.consumers),
        # A fresh execution replaces the entry: a cached artifact that was deleted or
        # corrupted is fixed by running the step again (--no-cache).
        "cache": insert(dialect, t.cache, ("cache_key",), cache_cols),
        # Only a running run is finished: a run cancelled (`runs cancel`) or found lost
        # in the meantime keeps that state and its reason.
        "finish": t.runs.update()
        .where(t.runs.c.run_id == sa.bindparam("rid"), t.runs.c.status == running)
        .values(
            status=sa.bindparam("st"),
            ended_at=sa.bindparam("end"),
            git_dirty=sa.bindparam("dirty"),
            reason=sa.bindparam("why"),
        ),
        "run_get": sa.select(
            t.runs.c.status, t.runs.c.ir_sha256, t.runs.c.pipeline, t.runs.c.reason
        ).where(t.runs.c.run_id == sa.bindparam("rid")),
        "reopen": t.runs.update()
        .where(t.runs.c.run_id == sa.bindparam("rid"), t.runs.c.status == failed)
        .values(
            status=running, ended_at=sa.null(), reason=sa.null(), heartbeat_at=sa.bindparam("t")
        ),
        "beat_run": t.runs.update()
        .where(t.runs.c.run_id == sa.bindparam("rid"), t.runs.c.status == running)
        .values(heartbeat_at=sa.bindparam("t")),
        "beat_step": t.step_runs.update()
        .where(
            t.step_runs.c.run_id == sa.bindparam("rid"),
            t.step_runs.c.step == sa.bindparam("s"),
            t.step_runs.c.status == running,
        )
        .values(heartbeat_at=sa.bindparam("t")),
        "stale_runs": sa.select(
            t.runs.c.run_id,
            t.runs.c.backend,
            sa.func.coalesce(t.runs.c.heartbeat_at, t.runs.c.started_at),
        ).where(
            t.runs.c.status == running,
            sa.func.coalesce(t.runs.c.heartbeat_at, t.runs.c.started_at) < sa.bindparam("cut"),
        ),
        "stale_steps": sa.select(
            t.step_runs.c.run_id,
            t.step_runs.c.step,
            sa.func.coalesce(t.step_runs.c.heartbeat_at, t.step_runs.c.started_at),
        )
        .select_from(t.step_runs.join(t.runs, t.runs.c.run_id == t.step_runs.c.run_id))
        .where(
            t.runs.c.status == running,
            t.step_runs.c.status == running,
            sa.func.coalesce(t.step_runs.c.heartbeat_at, t.step_runs.c.started_at)
            < sa.bindparam("cut"),
        ),
        "cache_get": sa.select(t.cache.c.outputs).where(t.cache.c.cache_key == sa.bindparam("k")),
        "steps_of_run": sa.select(*(t.step_runs.c[name] for name in STEP_COLUMNS)).where(
            t.step_runs.c.run_id == sa.bindparam("rid")
        ),
        "complete": _complete(t, dialect),
    }


def _step_upsert(t: Tables, dialect: str, columns: Sequence[str]) -> Any:
    """INSERT of a step run that replaces an existing record only when that record is not
    a success (completed, cached) of the same IR: a failed attempt, a running marker or a
    duplicate attempt never overwrites a completed step."""
    import sqlalchemy as sa

    table = t.step_runs
    done: list[Any] = [sa.literal_column(f"'{state}'") for state in DONE]
    if dialect in ("sqlite", "postgresql"):
        module: Any = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
        stmt = module.insert(table)
        replace = sa.or_(
            table.c.status.not_in(done),
            sa.func.coalesce(table.c.ir_sha256, sa.literal_column("''")) != stmt.excluded.ir_sha256,
        )
        return stmt.on_conflict_do_update(
            index_elements=["run_id", "step"],
            set_={c: stmt.excluded[c] for c in columns},
            where=replace,
        )
    from sqlalchemy.dialects.mysql import insert as mysql_insert

    upsert: Any = mysql_insert(table)
    # MySQL applies the assignments in order and later ones see the new values: status and
    # then ir_sha256 go last so every condition reads the old record's values.
    replace = sa.or_(
        table.c.status.not_in(done),
        sa.func.coalesce(table.c.ir_sha256, sa.literal_column("''")) != upsert.inserted.ir_sha256,
    )
    last = ("status", "ir_sha256")
    order = [c for c in columns if c not in last] + [c for c in last if c in columns]
    return upsert.on_duplicate_key_update(
        [(c, sa.func.IF(replace, upsert.inserted[c], table.c[c])) for c in order]
    )


def _complete(t: Tables, dialect: str) -> Any:
    """UPDATE the run to completed when n steps are completed or cached."""
    import sqlalchemy as sa

    runs, steps = t.runs, t.step_runs
    # Constants as SQL literals: a compiled hot-path statement takes only named parameters.
    completed: Any = sa.literal_column("'completed'")
    cached: Any = sa.literal_column("'cached'")
    done = (
        sa.select(sa.func.count())
        .select_from(steps)
        .where(steps.c.run_id == sa.bindparam("rid"), steps.c.status.in_([completed, cached]))
        .scalar_subquery()
    )
    if dialect == "mysql":
        # MySQL refuses a subquery on the table being updated unless it is materialized.
        done = (
            sa.select(sa.text("n"))
            .select_from(sa.select(done.label("n")).subquery("d"))
            .scalar_subquery()
        )
    return (
        runs.update()
        .where(
            runs.c.run_id == sa.bindparam("rid"),
            runs.c.status == sa.literal_column("'running'"),
            done >= sa.bindparam("n"),
        )
        .values(status=completed, ended_at=sa.bindparam("end"))
    )
