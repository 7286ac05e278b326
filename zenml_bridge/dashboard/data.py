"""What the dashboard reads: the metadata store opened read-only, and artifact files.

The dashboard never writes. SQLite stores are opened with ``mode=ro`` (SQLite itself refuses any
write); PostgreSQL sessions start with ``default_transaction_read_only=on`` and MySQL/MariaDB
sessions with ``SET SESSION TRANSACTION READ ONLY`` (the server refuses any write). A store whose
tables are missing or older than this zenml-bridge is reported, not migrated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from zenml_bridge.errors import BridgeError
from zenml_bridge.stores.fastpath import sqlite_file
from zenml_bridge.stores.metadata import MetadataStore, _row, describe_url, is_read_only

#: Run states a run list can be filtered by (see docs/runtime.md).
RUN_STATES = ("running", "completed", "failed", "stopped", "cancelled")
PER_PAGE = 50
MAX_PER_PAGE = 500


PG_READ_ONLY = "-c default_transaction_read_only=on"
MYSQL_READ_ONLY = "SET SESSION TRANSACTION READ ONLY"


def _query_values(parsed: Any, key: str) -> list[str]:
    value = parsed.query.get(key)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def read_only_url(url: str) -> str:
    """The URL of the same store, opened so that the database refuses every write.

    Raises:
        BridgeError: a SQLite store that does not exist yet, or a URL this cannot make
            read-only.
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        if is_read_only(url):
            return url
        path = sqlite_file(url)
        if path is None:
            raise BridgeError(
                f"The dashboard opens SQLite stores read-only and needs a plain "
                f"sqlite:///PATH URL, not {describe_url(url)}. Set ZENML_BRIDGE_METADATA_URL "
                "to sqlite:///path/to/metadata.db."
            )
        if not os.path.isfile(path):
            raise BridgeError(
                f"There is no metadata store at {path} yet: nothing has run with this "
                "configuration. Run a pipeline first (`zenml-bridge run SRC`), or point "
                "ZENML_BRIDGE_METADATA_URL at an existing store."
            )
        from zenml_bridge.cli.common import read_only_url as unwritable_url

        # A file or folder this process cannot write gets the CLI's form (immutable=1 when
        # there is no write-ahead log to read: SQLite could not create its -shm index there).
        return (
            unwritable_url(url) or f"sqlite:///file:{quote(os.path.abspath(path))}?mode=ro&uri=true"
        )
    from zenml_bridge.stores.connect import parse_url

    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        # Kept beside the user's own options (e.g. -csearch_path=...).
        options = " ".join([*_query_values(parsed, "options"), PG_READ_ONLY])
        parsed = parsed.update_query_dict({"options": options})
    elif backend in ("mysql", "mariadb"):
        if _query_values(parsed, "init_command"):
            raise BridgeError(
                f"The metadata URL {describe_url(url)} sets init_command, which the dashboard "
                "needs for its read-only session. Remove it from the URL for the dashboard."
            )
        parsed = parsed.update_query_dict({"init_command": MYSQL_READ_ONLY})
    else:
        raise BridgeError(
            f"The dashboard reads SQLite, PostgreSQL and MySQL/MariaDB stores, not "
            f"{describe_url(url)}. Point ZENML_BRIDGE_METADATA_URL at one of those."
        )
    rendered: str = parsed.render_as_string(hide_password=False)
    return rendered


def open_store(url: str) -> MetadataStore:
    """The metadata store at ``url``, opened read-only (see :func:`read_only_url`)."""
    import sqlalchemy as sa

    ro_url = read_only_url(url)
    try:
        return MetadataStore(ro_url)
    except BridgeError as exc:
        raise BridgeError(user_text(str(exc), ro_url, url)) from None
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise BridgeError(
            f"The metadata store {describe_url(url)} has no zenml-bridge tables yet or an older "
            f"schema ({reason}), and the dashboard only reads. Open it once with a command that "
            "may upgrade it (`zenml-bridge runs list` with the same configuration), then start "
            "the dashboard again."
        ) from None


def user_text(message: str, ro_url: str, url: str) -> str:
    """A store's message with the URL the user configured, not its read-only form."""
    return message.replace(describe_url(ro_url), describe_url(url))


@dataclass(frozen=True)
class RunPage:
    """One page of the run list: rows newest first, the total matching, page numbers."""

    runs: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    per_page: int


def runs_page(
    store: MetadataStore,
    *,
    pipeline: str | None = None,
    status: str | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> RunPage:
    """Runs newest first, filtered by pipeline and status, one page of them."""
    import sqlalchemy as sa

    runs = store.t.runs
    where = []
    if pipeline:
        where.append(runs.c.pipeline == pipeline)
    if status:
        where.append(runs.c.status == status)
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    count = sa.select(sa.func.count()).select_from(runs).where(*where)
    with store._read() as conn:
        total = int(conn.execute(count).scalar() or 0)
        pages = max(1, -(-total // per_page))
        page = max(1, min(page, pages))
        query = (
            sa.select(runs)
            .where(*where)
            .order_by(runs.c.started_at.desc(), runs.c.run_id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        rows = [_row(r) for r in conn.execute(query)]
    return RunPage(runs=rows, total=total, page=page, pages=pages, per_page=per_page)


def pipeline_names(store: MetadataStore) -> list[str]:
    """Names of the pipelines that have runs, sorted."""
    import sqlalchemy as sa

    pipelines = store.t.pipelines
    with store._read() as conn:
        return [str(n) for n in conn.execute(sa.select(pipelines.c.name).order_by("name"))]


def step_inputs(store: MetadataStore, run_id: str, step: str) -> list[dict[str, Any]]:
    """The artifacts a step run read: input name, artifact id, producing run/step/output."""
    import sqlalchemy as sa

    cons, arts = store.t.consumers, store.t.artifacts
    query = (
        sa.select(
            cons.c.input,
            cons.c.artifact_id,
            arts.c.run_id,
            arts.c.step,
            arts.c.output,
            arts.c.type_name,
            arts.c.size,
        )
        .select_from(cons.outerjoin(arts, arts.c.artifact_id == cons.c.artifact_id))
        .where(cons.c.run_id == run_id, cons.c.step == step)
        .order_by(cons.c.input)
    )
    with store._read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def producers(store: MetadataStore, artifact_ids: list[str]) -> dict[str, dict[str, Any]]:
    """artifact id -> the run and step that wrote it (for outputs a cache hit reused)."""
    import sqlalchemy as sa

    if not artifact_ids:
        return {}
    arts = store.t.artifacts
    query = sa.select(arts.c.artifact_id, arts.c.run_id, arts.c.step).where(
        arts.c.artifact_id.in_(artifact_ids)
    )
    with store._read() as conn:
        return {r.artifact_id: dict(r._mapping) for r in conn.execute(query)}


def ir_steps(store: MetadataStore, ir_sha256: str) -> list[dict[str, Any]]:
    """The steps of a run's IR (empty when the IR is not in the store or unreadable)."""
    text = store.get_ir_json(ir_sha256)
    if not text:
        return []
    try:
        steps = json.loads(text).get("steps", [])
    except (ValueError, AttributeError):
        return []
    return [dict(s) for s in steps if isinstance(s, Mapping) and isinstance(s.get("name"), str)]


def step_graph(
    ir: list[dict[str, Any]], records: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Nodes (one per step) and edges (data and order) of a run, for the graph script."""
    names = [s["name"] for s in ir] + sorted(set(records) - {s["name"] for s in ir})
    nodes = []
    for name in names:
        record = records.get(name) or {}
        status = str(record.get("status") or "not run")
        nodes.append(
            {
                "id": name,
                "status": status,
                "cached": status == "cached",
                "duration": duration(record.get("started_at"), record.get("ended_at")),
            }
        )
    edges = []
    known = set(names)
    for spec in ir:
        for ref in spec.get("inputs") or []:
            upstream = ref.get("step")
            if ref.get("kind") == "output" and upstream in known:
                label = f"{ref.get('output')} \u2192 {ref.get('name')}"
                edges.append({"source": upstream, "target": spec["name"], "label": label})
        for upstream in spec.get("after") or []:
            if upstream in known:
                edges.append({"source": upstream, "target": spec["name"], "label": "after"})
    return {"nodes": nodes, "edges": edges}


def duration(start: Any, end: Any) -> str:
    if not isinstance(start, int | float) or not isinstance(end, int | float):
        return "-"
    seconds = max(0.0, float(end) - float(start))
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


# -- artifact files --------------------------------------------------------------------------


def visualizations(store: MetadataStore, artifact_id: str, uri: str) -> dict[str, int]:
    """The visualizations of an artifact: name -> size, sorted by name.

    From the store's visualizations table (schema 5); for an artifact with no rows there (made
    before that table, or its rows were not written) from the files of its folder.
    """
    from zenml_bridge.materializers import visualizations as vis
    from zenml_bridge.stores import visualizations as table
    from zenml_bridge.stores.artifacts import filesystem_for

    recorded = {str(r["name"]): int(r["size"]) for r in table.listed(store, artifact_id)}
    if recorded or not uri:
        return recorded
    try:
        return vis.list_files(uri, filesystem_for(uri))
    except (OSError, BridgeError):
        return {}


def read_visualization(
    store: MetadataStore, artifact_id: str, uri: str, name: str
) -> tuple[bytes, str]:
    """The bytes and media type of one visualization, by a name the artifact really has.

    Raises:
        BridgeError: the artifact has no visualization of that name.
    """
    from zenml_bridge.materializers import visualizations as vis
    from zenml_bridge.materializers.base import join
    from zenml_bridge.stores.artifacts import filesystem_for

    listed = visualizations(store, artifact_id, uri)
    if name not in listed:  # only names the artifact lists: no path of the request is opened
        raise BridgeError(
            f"The artifact has no visualization {name!r}; it has: "
            + (", ".join(listed) or "none")
            + "."
        )
    fs = filesystem_for(uri)
    with fs.open(join(join(uri, vis.FOLDER), name), "rb") as handle:
        data: bytes = handle.read()
    return data, vis.media_type(name)


#: A small artifact of these materializers has its value shown on the artifact page.
PREVIEW_MATERIALIZERS = frozenset({"builtins.json", "builtins.str"})
PREVIEW_LIMIT = 4096


def preview(artifact: Mapping[str, Any]) -> str | None:
    """The value of a small JSON/text artifact as text, else None (never loads big data)."""
    if artifact.get("materializer") not in PREVIEW_MATERIALIZERS:
        return None
    if int(artifact.get("size") or 0) > PREVIEW_LIMIT:
        return None
    from zenml_bridge.runtime.records import ArtifactRecord

    try:
        value = ArtifactRecord(
            artifact_id=artifact["artifact_id"],
            uri=artifact["uri"],
            sha256=artifact["content_sha256"],
            materializer=artifact["materializer"],
            materializer_version=str(artifact["materializer_version"]),
        ).load()
    except (BridgeError, OSError, ValueError) as exc:
        return f"(cannot read the value: {str(exc).splitlines()[0][:200]})"
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, default=str)
