"""``zenml-bridge runs list | show RUN | compare RUN RUN | cancel RUN``.

``list`` and ``show`` first mark runs and steps whose heartbeat stopped as failed ("lost"),
see :mod:`zenml_bridge.runtime.liveness`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from zenml_bridge.redact import redact_text
from zenml_bridge.stores.run_values import many_run_values, run_values


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("runs", help="list, show and compare recorded runs")
    actions = parser.add_subparsers(dest="runs_command", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="recent runs, newest first")
    listing.add_argument("--pipeline", help="only runs of this pipeline")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one run: steps, parameters, git, IR sha, artifacts")
    show.add_argument("run", metavar="RUN", help="run id, unique prefix, or 'latest'")
    show.add_argument("--json", action="store_true", help="print the records as JSON")
    show.set_defaults(handler=_show)
    compare = actions.add_parser("compare", help="parameters, steps and outputs of two runs")
    compare.add_argument("first", metavar="RUN")
    compare.add_argument("second", metavar="RUN")
    compare.set_defaults(handler=_compare)
    cancel = actions.add_parser(
        "cancel", help="mark a running run cancelled (its running steps failed)"
    )
    cancel.add_argument("run", metavar="RUN", help="run id, unique prefix, or 'latest'")
    cancel.set_defaults(handler=_cancel)


def store() -> Any:
    from zenml_bridge.cli.common import open_store

    return open_store()  # read-only when the SQLite file cannot be written: still listable


def swept_store() -> Any:
    """The store, after runs whose heartbeat stopped were marked failed ("lost")."""
    from zenml_bridge.runtime.liveness import maybe_sweep

    metadata = store()
    maybe_sweep(metadata, force=True)
    return metadata


def _cancel(args: argparse.Namespace) -> int:
    from zenml_bridge.errors import BridgeError

    metadata = store()
    run = metadata.resolve_run(args.run)
    reason = f"cancelled by `zenml-bridge runs cancel` at {time.strftime('%Y-%m-%d %H:%M:%S')}"
    if not metadata.cancel_run(run["run_id"], reason):
        now = metadata.get_run(run["run_id"]) or run
        raise BridgeError(
            f"Run {run['run_id']} is {now['status']}, not running: there is nothing to cancel."
        )
    print(f"Run {run['run_id']} cancelled; its running steps are marked failed.")
    print(
        "A local run stops before its next step; an orchestrator's next task of it exits with "
        "an error (stop the orchestrator's run too, e.g. in the Airflow UI)."
    )
    return 0


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def seconds(start: float | None, end: float | None) -> str:
    return "-" if start is None or end is None else f"{end - start:.2f}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _list(args: argparse.Namespace) -> int:
    runs = swept_store().list_runs(limit=args.limit, pipeline=args.pipeline)
    if not runs:
        print("No runs yet. Start one with `zenml-bridge run SRC`.")
        return 0
    rows = [
        (
            r["run_id"],
            r["pipeline"],
            r["status"],
            when(r["started_at"]),
            seconds(r["started_at"], r["ended_at"]),
            r["backend"],
        )
        for r in runs
    ]
    print(table(("RUN", "PIPELINE", "STATUS", "STARTED", "DURATION", "BACKEND"), rows))
    return 0


def _show(args: argparse.Namespace) -> int:
    metadata = swept_store()
    run = metadata.resolve_run(args.run)
    steps = metadata.step_runs(run["run_id"])
    ordered = sorted(steps.values(), key=lambda s: s["started_at"])
    values = run_values(metadata, run["run_id"])
    if args.json:
        document = {"run": run, "steps": ordered, "run_values": values}
        text = json.dumps(document, indent=2, sort_keys=True, default=str)
        print(redact_text(text))
        return 0
    git = run["git_sha"] or "-"
    if run["git_sha"] and run["git_dirty"] is not None:
        git += " (dirty)" if run["git_dirty"] else " (clean)"
    print(f"Run        {run['run_id']}")
    print(f"Pipeline   {run['pipeline']}")
    print(f"Status     {run['status']}")
    if run.get("reason"):
        print(f"Reason     {redact_text(run['reason'])}")
    duration = seconds(run["started_at"], run["ended_at"])
    print(f"Started    {when(run['started_at'])}   duration {duration}")
    print(f"Backend    {run['backend']}")
    print(f"Parameters {redact_text(json.dumps(run['parameters'], sort_keys=True))}")
    print(f"Git        {git}")
    print(f"IR sha256  {run['ir_sha256']}")
    if run["code_archive_sha256"]:
        print(f"Code       {run['code_archive_sha256']}")
    for key, value in sorted(run["links"].items()):
        print(f"Link       {key} = {redact_text(value)}")
    for label, section in (("Metric", "metrics"), ("Metadata", "metadata")):
        for key, value in values[section].items():
            shown = redact_text(json.dumps(value, sort_keys=True, default=str))
            print(f"{label:<10} {key} = {shown}")
    print()
    rows = [
        (
            s["step"],
            s["status"],
            seconds(s["started_at"], s["ended_at"]),
            s["attempt"],
            (s["cache_key"] or "-")[:12],
        )
        for s in ordered
    ]
    print(
        table(("STEP", "STATUS", "DURATION", "ATTEMPT", "CACHE KEY"), rows)
        if rows
        else "No steps recorded."
    )
    outputs = [
        (f"{s['step']}.{name}", info["id"], info["sha256"][:16], info["materializer"], _url(info))
        for s in ordered
        for name, info in sorted(s["outputs"].items())
    ]
    if outputs:
        print()
        print(table(("OUTPUT", "ARTIFACT", "SHA256", "MATERIALIZER", "URI"), outputs))
    for s in ordered:
        if s["metrics"] or s["metadata"]:
            print(
                f"\n{s['step']}: metrics {json.dumps(s['metrics'], sort_keys=True)}"
                f" metadata {json.dumps(s['metadata'], sort_keys=True, default=str)}"
            )
        if s["status"] in ("failed", "retrying") and s["error"]:
            error = redact_text(s["error"]).rstrip()
            print(f"\n{s['step']} failed:\n  " + error.replace("\n", "\n  "))
        elif s["status"] == "stopped" and s["error"]:
            print(f"\n{s['step']} stopped the pipeline: {redact_text(s['error']).rstrip()}")
    return 0


def _url(info: dict[str, Any]) -> str:
    return redact_text(info["uri"])


def _compare(args: argparse.Namespace) -> int:
    metadata = store()
    first, second = metadata.resolve_run(args.first), metadata.resolve_run(args.second)
    a_steps = metadata.step_runs(first["run_id"])
    b_steps = metadata.step_runs(second["run_id"])
    print(f"A = {first['run_id']} ({first['status']})")
    print(f"B = {second['run_id']} ({second['status']})")
    keys = sorted(set(first["parameters"]) | set(second["parameters"]))
    rows: list[tuple[Any, ...]] = [
        (
            k,
            redact_text(json.dumps(first["parameters"].get(k))),
            redact_text(json.dumps(second["parameters"].get(k))),
            "" if first["parameters"].get(k) == second["parameters"].get(k) else "differs",
        )
        for k in keys
    ]
    if first["ir_sha256"] != second["ir_sha256"]:
        rows.append(("(IR sha256)", first["ir_sha256"][:12], second["ir_sha256"][:12], "differs"))
    if rows:
        print()
        print(table(("PARAMETER", "A", "B", ""), rows))
    rows = []
    for name in sorted(set(a_steps) | set(b_steps)):
        a, b = a_steps.get(name), b_steps.get(name)
        for out in sorted(set((a or {}).get("outputs", {})) | set((b or {}).get("outputs", {}))):
            ha = (a or {}).get("outputs", {}).get(out, {}).get("sha256", "-")
            hb = (b or {}).get("outputs", {}).get(out, {}).get("sha256", "-")
            rows.append(
                (
                    f"{name}.{out}",
                    a["status"] if a else "-",
                    b["status"] if b else "-",
                    ha[:12],
                    hb[:12],
                    "same" if ha == hb else "differs",
                )
            )
        if not (a or b or {}).get("outputs"):
            rows.append((name, a["status"] if a else "-", b["status"] if b else "-", "", "", ""))
    print()
    print(table(("STEP.OUTPUT", "A", "B", "SHA256 A", "SHA256 B", ""), rows))
    values = many_run_values(metadata, [first["run_id"], second["run_id"]])
    a_values, b_values = values[first["run_id"]], values[second["run_id"]]
    metric_rows = [
        (f"(run).{key}", va, vb, "" if va == vb else "differs")
        for section in ("metrics", "metadata")
        for key in sorted(set(a_values[section]) | set(b_values[section]))
        for va, vb in [(_shown(a_values[section], key), _shown(b_values[section], key))]
    ] + _metric_rows(a_steps, b_steps)
    if metric_rows:
        print()
        print(table(("STEP.METRIC", "A", "B", ""), metric_rows))
    return 0


def _shown(values: dict[str, Any], key: str) -> Any:
    """A run value for a table cell: numbers as they are, other JSON as text, '-' if absent."""
    if key not in values:
        return "-"
    value = values[key]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return redact_text(json.dumps(value, sort_keys=True, default=str))


def _metric_rows(a_steps: dict[str, Any], b_steps: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Metrics of both runs side by side (cached steps carry their producer's metrics)."""
    rows: list[tuple[Any, ...]] = []
    for name in sorted(set(a_steps) | set(b_steps)):
        a = (a_steps.get(name) or {}).get("metrics") or {}
        b = (b_steps.get(name) or {}).get("metrics") or {}
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key, "-"), b.get(key, "-")
            rows.append((f"{name}.{key}", va, vb, "" if va == vb else "differs"))
    return rows
