"""Compare recorded runs: what differs in parameters, metrics, steps and artifacts.

:func:`compare_runs` reads only the metadata store (and, for small JSON or text artifacts, their
values from the artifact store) and returns plain JSON-able data, the document that
``zenml-bridge runs compare --json`` prints. Its schema is versioned by :data:`SCHEMA` and
documented in docs/cli.md; fields are only ever added within one version.

Example:
    >>> from zenml_bridge.cli.common import open_store
    >>> report = compare_runs(open_store(), ["latest", "nightly-0001"])  # doctest: +SKIP
    >>> [p["name"] for p in report["parameters"] if p["differs"]]  # doctest: +SKIP
    ['C']
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from zenml_bridge.errors import BridgeError

#: Identifies the layout of the comparison document (bumped on incompatible changes only).
SCHEMA = "zenml-bridge/runs-compare/1"
#: Artifacts of these materializers, up to :data:`VALUE_LIMIT` bytes, have their values shown.
VALUE_MATERIALIZERS = frozenset({"builtins.json", "builtins.str"})
VALUE_LIMIT = 4096
#: At most this many runs in one comparison (a table wider than this is unreadable).
MAX_RUNS = 20


def compare_runs(store: Any, refs: Sequence[str], *, load_values: bool = True) -> dict[str, Any]:
    """The comparison document of the runs ``refs`` (ids, unique prefixes or ``latest``).

    Args:
        store: an open :class:`~zenml_bridge.stores.metadata.MetadataStore`.
        refs: two or more run references, in the order the columns appear.
        load_values: read small JSON/text artifacts to show their values side by side.

    Raises:
        BridgeError: fewer than two runs, too many, an unknown run, or the same run twice.
    """
    if len(refs) < 2:
        raise BridgeError("`runs compare` needs at least two runs, e.g. `runs compare A B`.")
    if len(refs) > MAX_RUNS:
        raise BridgeError(
            f"`runs compare` takes at most {MAX_RUNS} runs, got {len(refs)}. Compare fewer runs."
        )
    runs = [store.resolve_run(ref) for ref in refs]
    ids = [r["run_id"] for r in runs]
    for i, run_id in enumerate(ids):
        if run_id in ids[:i]:
            raise BridgeError(
                f"Run {run_id} is given twice ({refs[ids.index(run_id)]!r} and {refs[i]!r}). "
                "Compare different runs."
            )
    steps = [store.step_runs(run_id) for run_id in ids]
    parsed: dict[str, dict[str, Mapping[str, Any]]] = {}  # runs of one IR share its parse
    for r in runs:
        if r["ir_sha256"] not in parsed:
            parsed[r["ir_sha256"]] = _ir_steps(store, r["ir_sha256"])
    irs = [parsed[r["ir_sha256"]] for r in runs]
    notes = []
    pipelines = sorted({r["pipeline"] for r in runs})
    if len(pipelines) > 1:
        notes.append(
            "The runs belong to different pipelines ("
            + ", ".join(pipelines)
            + "): steps and artifacts are matched by name."
        )
    return {
        "schema": SCHEMA,
        "runs": [_run_summary(r) for r in runs],
        "notes": notes,
        "parameters": _rows([r["parameters"] for r in runs], "name"),
        "metrics": _metric_rows([_run_values(store, run_id, "metrics") for run_id in ids], steps),
        "run_metadata": _rows([_run_values(store, run_id, "metadata") for run_id in ids], "name"),
        "steps": _step_rows(steps, irs),
        "artifacts": _artifact_rows(steps, load_values),
    }


def _run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("run_id", "pipeline", "status", "backend", "ir_sha256", "git_sha", "started_at")
    summary = {key: run.get(key) for key in keys}
    start, end = run.get("started_at"), run.get("ended_at")
    summary["duration_s"] = None if start is None or end is None else round(end - start, 3)
    return summary


def _differs(values: Sequence[Any]) -> bool:
    first = _canonical(values[0])
    return any(_canonical(v) != first for v in values[1:])


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _rows(mappings: Sequence[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    names = sorted({name for m in mappings for name in m})
    rows = []
    for name in names:
        values = [m.get(name) for m in mappings]
        rows.append({key: name, "values": values, "differs": _differs(values)})
    return rows


def _run_values(store: Any, run_id: str, section: str) -> dict[str, Any]:
    """Run-level ``metrics`` (``log_run_metric``) or ``metadata`` (``log_run_metadata``)."""
    from zenml_bridge.stores.run_values import run_values

    return _as_dict(run_values(store, run_id).get(section))


def _metric_rows(
    run_metrics: Sequence[Mapping[str, Any]], steps: Sequence[Mapping[str, Mapping[str, Any]]]
) -> list[dict[str, Any]]:
    """Run-level metrics (``step`` None) first, then each step's (cached steps keep theirs)."""
    rows = [{"step": None, **row} for row in _rows(run_metrics, "name")]
    for name in sorted({s for run_steps in steps for s in run_steps}):
        per_run = [_as_dict((run_steps.get(name) or {}).get("metrics")) for run_steps in steps]
        rows.extend({"step": name, **row} for row in _rows(per_run, "name"))
    return rows


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):  # a JSON column not decoded by an older store
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}


def _ir_steps(store: Any, ir_sha256: str) -> dict[str, Mapping[str, Any]]:
    """Step name -> its IR entry (code hash, inputs), or {} when the IR is not stored."""
    text = store.get_ir_json(ir_sha256)
    if not text:
        return {}
    try:
        return {s["name"]: s for s in json.loads(text).get("steps", [])}
    except (ValueError, TypeError, KeyError):
        return {}


def _step_rows(
    steps: Sequence[Mapping[str, Mapping[str, Any]]], irs: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    rows = []
    names = {s for run_steps in steps for s in run_steps} | {s for ir in irs for s in ir}
    for name in sorted(names):
        cells = [
            _step_cell(run_steps.get(name), ir.get(name), run_steps)
            for run_steps, ir in zip(steps, irs)
        ]
        changed = []
        for what in ("code_hash", "parameters", "inputs", "cache_key", "status"):
            if _differs([cell.get(what) if cell else None for cell in cells]):
                changed.append(what)
        if any(cell is None for cell in cells):
            changed.insert(0, "missing")
        rows.append({"step": name, "differs": bool(changed), "changed": changed, "runs": cells})
    return rows


def _step_cell(
    record: Mapping[str, Any] | None,
    spec: Mapping[str, Any] | None,
    run_steps: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any] | None:
    if record is None and spec is None:
        return None
    inputs: dict[str, str | None] = {}
    for ref in (spec or {}).get("inputs", []):
        if ref.get("kind") == "output" or ref.get("step"):
            upstream = (run_steps.get(ref.get("step") or "") or {}).get("outputs") or {}
            inputs[ref["name"]] = (upstream.get(ref.get("output") or "") or {}).get("sha256")
    record = record or {}
    start, end = record.get("started_at"), record.get("ended_at")
    return {
        "status": record.get("status", "not run"),
        "cached": record.get("status") == "cached",
        "code_hash": (spec or {}).get("code_hash"),
        "cache_key": record.get("cache_key"),
        "parameters": _as_dict(record.get("parameters")),
        "inputs": inputs,
        "duration_s": None if start is None or end is None else round(end - start, 3),
    }


def _artifact_rows(
    steps: Sequence[Mapping[str, Mapping[str, Any]]], load_values: bool
) -> list[dict[str, Any]]:
    keys = sorted(
        {
            (name, out)
            for run_steps in steps
            for name, record in run_steps.items()
            for out in (record.get("outputs") or {})
        }
    )
    rows = []
    for name, out in keys:
        cells: list[dict[str, Any] | None] = []
        for run_steps in steps:
            info = ((run_steps.get(name) or {}).get("outputs") or {}).get(out)
            cells.append(_artifact_cell(info, load_values) if info else None)
        hashes = [cell["sha256"] if cell else None for cell in cells]
        rows.append({"step": name, "output": out, "differs": _differs(hashes), "runs": cells})
    return rows


def _artifact_cell(info: Mapping[str, Any], load_values: bool) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "artifact_id": info.get("id"),
        "sha256": info.get("sha256"),
        "materializer": info.get("materializer"),
        "type": info.get("type"),
        "size": info.get("size"),
    }
    small = isinstance(info.get("size"), int) and info["size"] <= VALUE_LIMIT
    if load_values and small and info.get("materializer") in VALUE_MATERIALIZERS:
        from zenml_bridge.runtime.records import ArtifactRecord

        try:
            cell["value"] = ArtifactRecord.from_info(info).load()
        except (BridgeError, OSError, ValueError) as exc:
            cell["value_error"] = str(exc).splitlines()[0][:200]
    return cell
