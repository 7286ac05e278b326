"""Run-level metrics and metadata (schema 4): what ``log_run_metric`` / ``log_run_metadata``
record on a run, from any step, in any process.

One row per (run, kind, key): ``kind`` is ``metric`` (a float) or ``metadata`` (any JSON
value); a later value of a key replaces the earlier one, and the row says which step logged it.

Example:
    >>> log_values(store, "run-1", "metric", {"auc": 0.91}, step="evaluate")  # doctest: +SKIP
    >>> run_values(store, "run-1")                                            # doctest: +SKIP
    {'metrics': {'auc': 0.91}, 'metadata': {}}
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

    from zenml_bridge.stores.metadata import MetadataStore
    from zenml_bridge.stores.schema import Tables

KINDS = ("metric", "metadata")


def table(t: Tables) -> sa.Table:
    """The ``<prefix>run_values`` table, defined on the store's MetaData on first use."""
    import sqlalchemy as sa

    prefix = t.schema_version.name[: -len("schema_version")]
    name = f"{prefix}run_values"
    found = t.metadata.tables.get(name)
    if found is not None:
        return found
    double = t.schema_version.c.applied_at.type
    long_text = t.pipeline_versions.c.ir_json.type
    return sa.Table(
        name,
        t.metadata,
        sa.Column("run_id", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", long_text, nullable=False),  # JSON
        sa.Column("step", sa.String(128)),
        sa.Column("logged_at", double, nullable=False),
    )


def migrate_v4(conn: sa.Connection, t: Tables) -> None:
    """Schema 4: the run values table."""
    table(t).create(conn, checkfirst=True)


def log_values(
    store: MetadataStore,
    run_id: str,
    kind: str,
    values: Mapping[str, Any],
    *,
    step: str | None = None,
) -> None:
    """Record ``values`` on the run (replacing earlier values of the same keys), one
    transaction."""
    if kind not in KINDS or not values:
        return
    tbl = table(store.t)
    now = time.time()
    rows = [
        {"run_id": run_id, "kind": kind, "key": str(key), "value": json.dumps(value),
         "step": step, "logged_at": now}
        for key, value in values.items()
    ]  # fmt: skip

    def work(conn: Any) -> None:
        import sqlalchemy as sa

        # Delete then insert: the same on SQLite, PostgreSQL and MariaDB.
        conn.execute(
            sa.delete(tbl).where(
                tbl.c.run_id == run_id, tbl.c.kind == kind, tbl.c.key.in_([r["key"] for r in rows])
            )
        )
        conn.execute(sa.insert(tbl), rows)

    store._write(work)


def run_values(store: MetadataStore, run_id: str) -> dict[str, dict[str, Any]]:
    """``{"metrics": {...}, "metadata": {...}}`` of a run (empty when nothing was logged)."""
    return many_run_values(store, [run_id]).get(run_id) or {"metrics": {}, "metadata": {}}


def many_run_values(
    store: MetadataStore, run_ids: Iterable[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Run values of several runs at once, by run id."""
    import sqlalchemy as sa

    ids = list(dict.fromkeys(run_ids))
    result: dict[str, dict[str, dict[str, Any]]] = {
        run_id: {"metrics": {}, "metadata": {}} for run_id in ids
    }
    if not ids:
        return result
    tbl = table(store.t)
    query = sa.select(tbl.c.run_id, tbl.c.kind, tbl.c.key, tbl.c.value).where(tbl.c.run_id.in_(ids))
    with store._read() as conn:
        rows = conn.execute(query.order_by(tbl.c.key)).all()
    for run_id, kind, key, value in rows:
        section = "metrics" if kind == "metric" else "metadata"
        result[run_id][section][key] = json.loads(value)
    return result
