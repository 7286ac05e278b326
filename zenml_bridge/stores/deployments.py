"""Deployments recorded in the metadata store (schema migration 6): one row per served model.

The table lives beside the store's other tables (same prefix, same database) and is reached
through :class:`DeploymentRecords`, which takes a :class:`~zenml_bridge.stores.metadata.
MetadataStore` and uses its engine and transactions. The ``handle`` column says how to reach the
running service again from another process (a process group id and its start time, or a
Kubernetes name); only its flavor's deployer interprets it.

Example:
    >>> records = DeploymentRecords(MetadataStore("sqlite:////tmp/zb/m.db"))  # doctest: +SKIP
    >>> [d["id"] for d in records.list()]                                     # doctest: +SKIP
    ['d-3f2a1c9b']
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zenml_bridge.errors import BridgeError, did_you_mean

if TYPE_CHECKING:
    import sqlalchemy as sa

    from zenml_bridge.stores.metadata import MetadataStore
    from zenml_bridge.stores.schema import Tables

#: Columns holding JSON text.
_JSON = ("handle", "config")


def deployments_table(t: Tables) -> sa.Table:
    """The deployments table of the store whose tables are ``t`` (added to its MetaData once)."""
    import sqlalchemy as sa

    md = t.metadata
    prefix = t.runs.name[: -len("runs")]
    name = f"{prefix}deployments"
    if name in md.tables:
        return md.tables[name]
    text = t.runs.c.parameters.type  # LONGTEXT on MySQL/MariaDB, TEXT elsewhere
    double = t.runs.c.started_at.type
    return sa.Table(
        name,
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("flavor", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(255)),
        sa.Column("artifact_id", sa.String(64)),
        sa.Column("handle", text, nullable=False),
        sa.Column("config", text, nullable=False),
        sa.Column("created_at", double, nullable=False, index=True),
        sa.Column("ended_at", double),
        sa.Column("reason", text),
    )


def _row(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    for key in _JSON:
        try:
            data[key] = json.loads(data[key]) if data.get(key) else {}
        except ValueError:
            raise BridgeError(
                f"The metadata store holds a damaged deployment record: column '{key}' of "
                f"deployment {data.get('id')!r} is not valid JSON. Delete that row or restore "
                "the database from a backup."
            ) from None
    return data


class DeploymentRecords:
    """Read and write deployment rows through a metadata store's engine."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    @property
    def table(self) -> sa.Table:
        return deployments_table(self.store.t)

    def add(self, record: Mapping[str, Any]) -> None:
        """Insert a new deployment row (``handle`` and ``config`` as mappings)."""
        values = dict(record)
        for key in _JSON:
            values[key] = json.dumps(values.get(key) or {}, sort_keys=True, default=str)
        table = self.table
        self.store._write(lambda conn: conn.execute(table.insert().values(**values)))

    def update(self, deployment_id: str, **values: Any) -> None:
        """Change columns of one row (``handle``/``config`` as mappings)."""
        for key in _JSON:
            if key in values:
                values[key] = json.dumps(values[key] or {}, sort_keys=True, default=str)
        table = self.table
        self.store._write(
            lambda conn: conn.execute(
                table.update().where(table.c.id == deployment_id).values(**values)
            )
        )

    def get(self, deployment_id: str) -> dict[str, Any] | None:
        import sqlalchemy as sa

        table = self.table
        with self.store._read() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == deployment_id)).first()
        return _row(row) if row is not None else None

    def list(self, flavor: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Deployments, newest first (only ``flavor``'s when given)."""
        import sqlalchemy as sa

        table = self.table
        query = sa.select(table).order_by(table.c.created_at.desc()).limit(limit)
        if flavor is not None:
            query = query.where(table.c.flavor == flavor)
        with self.store._read() as conn:
            return [_row(r) for r in conn.execute(query).all()]

    def resolve(self, ref: str) -> dict[str, Any]:
        """A deployment by id or unique id prefix; BridgeError with "did you mean" otherwise."""
        from zenml_bridge.stores.metadata import describe_url, find_by_prefix

        table = self.table
        with self.store._read() as conn:
            row, ids, several = find_by_prefix(conn, table, table.c.id, ref)
        if row is not None:
            return _row(row)
        ambiguous = " The prefix matches several; give more characters." if several else ""
        raise BridgeError(
            f"There is no deployment {ref!r} in the metadata store "
            f"{describe_url(self.store.url)}."
            + ambiguous
            + did_you_mean(ref, ids)
            + " List deployments with `zenml-bridge deployments list`."
        )


def consumed_artifact(store: MetadataStore, run_id: str, step: str, input_name: str) -> str | None:
    """The artifact id a finished step of a run consumed as ``input_name`` (lineage lookup).

    A deploy step uses it to record the model artifact behind what it serves: the build step
    that consumed the model has finished (and recorded its inputs) before the deploy step runs.
    """
    import sqlalchemy as sa

    consumers = store.t.consumers
    query = sa.select(consumers.c.artifact_id).where(
        consumers.c.run_id == run_id, consumers.c.step == step, consumers.c.input == input_name
    )
    with store._read() as conn:
        found = conn.execute(query).scalar()
    return str(found) if found is not None else None
