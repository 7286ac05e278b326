"""The visualizations table (schema migration 5): which reports each artifact keeps.

The files themselves are in the artifact folder (``visualizations/<name>``, covered by the
artifact's content hash); this table lists them so that ``zenml-bridge artifacts show`` and the
dashboard answer from metadata. Rows are written right after the step's record (their own
transaction); a missing row only hides a report that :meth:`ArtifactRecord.visualizations`
still reads from the verified folder.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

    from zenml_bridge.stores.schema import Tables

#: Table name after the store's prefix.
NAME = "visualizations"


def define_table(md: sa.MetaData, prefix: str) -> sa.Table:
    """Add the table to ``md`` (called by ``schema.tables``)."""
    import sqlalchemy as sa

    double = getattr(sa, "Double", None)
    return sa.Table(
        f"{prefix}{NAME}",
        md,
        sa.Column("artifact_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column(
            "created_at", double() if double is not None else sa.Float(precision=53), nullable=False
        ),
    )


def table(t: Tables) -> sa.Table:
    """The visualizations table of a store's tables."""
    prefix = t.runs.name[: -len("runs")]
    return t.metadata.tables[f"{prefix}{NAME}"]


def migrate_v5(conn: sa.Connection, t: Tables) -> None:
    """Migration 5: create the visualizations table."""
    table(t).create(conn, checkfirst=True)


def record(store: Any, artifact_id: str, pages: Mapping[str, int]) -> None:
    """Record the visualizations (file name -> size) of a new artifact."""
    if not pages:
        return
    from zenml_bridge.materializers.visualizations import media_type

    now = time.time()
    rows = [
        {"artifact_id": artifact_id, "name": name, "media_type": media_type(name), "size": size,
         "created_at": now}
        for name, size in sorted(pages.items())
    ]  # fmt: skip
    insert = store._insert(table(store.t), ("artifact_id", "name"))
    store._write(lambda conn: conn.execute(insert, rows))


def listed(store: Any, artifact_id: str) -> list[dict[str, Any]]:
    """The recorded visualizations of an artifact: name, media_type, size (by name)."""
    import sqlalchemy as sa

    viz = table(store.t)
    query = (
        sa.select(viz.c.name, viz.c.media_type, viz.c.size)
        .where(viz.c.artifact_id == artifact_id)
        .order_by(viz.c.name)
    )
    with store._read() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
