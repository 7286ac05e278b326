"""``zenml-bridge runs list | show RUN | compare RUN RUN | cancel RUN``.

``list`` and ``show`` first mark runs and steps whose heartbeat stopped as failed ("lost"),
see :mod:`zenml_bridge.runtime.liveness`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zenml_bridge.redact import redact_text
from zenml_bridge.stores.run_values import run_values


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
    compare = actions.add_parser(
        "compare",
        help="parameters, metrics, steps and artifacts of two or more runs",
        description="What differs between runs: parameters, metrics (cached steps keep theirs), "
        "steps (status, cache hit, code hash, inputs) and artifacts (content hash; values of "
        "small JSON/text artifacts side by side). Runs of different pipelines are matched by "
        "step name, with a note.",
    )
    compare.add_argument(
        "runs", metavar="RUN", nargs="+", help="two or more: run id, unique prefix, or 'latest'"
    )
    compare.add_argument(
        "--json", action="store_true", help="print the comparison as JSON (docs/cli.md)"
    )
    compare.add_argument(
        "--html", metavar="FILE", type=Path, help="also write a self-contained HTML page"
    )
    compare.add_argument(
        "--no-values", action="store_true", help="do not read small artifacts for their values"
    )
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
    from zenml_bridge.compare import compare_runs

    report = compare_runs(store(), args.runs, load_values=not args.no_values)
    if args.html is not None:
        _write_html(args.html, report)
    if args.json:
        print(redact_text(json.dumps(report, indent=2, sort_keys=True, default=str)))
        return 0
    print(compare_text(report))
    if args.html is not None:
        print(f"\nWrote {args.html}")
    return 0


def _write_html(path: Path, report: dict[str, Any]) -> None:
    """The page written to a temporary name and renamed: never half-written."""
    import os
    import tempfile

    from zenml_bridge.compare_html import render_html
    from zenml_bridge.errors import BridgeError

    target = path.expanduser()
    if target.is_dir():
        raise BridgeError(f"--html {path} is a folder. Give a file name, e.g. {path}/report.html.")
    if not target.parent.is_dir():
        raise BridgeError(
            f"--html {path}: the folder {target.parent} does not exist. Create it first."
        )
    page = render_html(report).encode("utf-8")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".zb-compare-", dir=target.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(page)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise BridgeError(
            f"Cannot write --html {path} ({exc.strerror}). Choose a folder you can write to."
        ) from None


def _json_cell(value: Any) -> str:
    text = redact_text(json.dumps(value, sort_keys=True, default=str))
    return text if len(text) <= 60 else text[:57] + "..."


def compare_text(report: dict[str, Any]) -> str:
    """The comparison document as the tables `runs compare` prints."""
    runs = report["runs"]
    letters = [chr(ord("A") + i) if i < 26 else f"R{i + 1}" for i in range(len(runs))]
    lines = [
        f"{letter} = {r['run_id']} ({r['status']}, {r['pipeline']})"
        for letter, r in zip(letters, runs)
    ]
    lines += [f"Note: {note}" for note in report["notes"]]
    rows: list[tuple[Any, ...]] = [
        (p["name"], *(_json_cell(v) for v in p["values"]), "differs" if p["differs"] else "")
        for p in report["parameters"]
    ]
    shas = [r["ir_sha256"] for r in runs]
    if len(set(shas)) > 1:
        rows.append(("(IR sha256)", *(s[:12] for s in shas), "differs"))
    if rows:
        lines += ["", table(("PARAMETER", *letters, ""), rows)]
    rows = [
        (
            f"(run).{m['name']}" if m["step"] is None else f"{m['step']}.{m['name']}",
            *(_json_cell(v) if v is not None else "-" for v in m["values"]),
            "differs" if m["differs"] else "",
        )
        for m in report["metrics"]
    ]
    if rows:
        lines += ["", table(("STEP.METRIC", *letters, ""), rows)]
    rows = [
        (
            f"(run).{m['name']}",
            *(_json_cell(v) for v in m["values"]),
            "differs" if m["differs"] else "",
        )
        for m in report.get("run_metadata", [])
    ]
    if rows:
        lines += ["", table(("RUN METADATA", *letters, ""), rows)]
    rows = []
    for s in report["steps"]:
        cells = [c["status"] if c else "-" for c in s["runs"]]
        codes = [(c["code_hash"] or "-")[:8] if c else "-" for c in s["runs"]]
        rows.append((s["step"], *cells, *codes, ", ".join(s["changed"])))
    if rows:
        code_heads = [f"CODE {letter}" for letter in letters]
        lines += ["", table(("STEP", *letters, *code_heads, "CHANGED"), rows)]
    rows = []
    values = []
    status = {s["step"]: [c["status"] if c else "-" for c in s["runs"]] for s in report["steps"]}
    for a in report["artifacts"]:
        cells = a["runs"]
        rows.append(
            (
                f"{a['step']}.{a['output']}",
                *status.get(a["step"], ["-"] * len(runs)),
                *((c["sha256"] or "-")[:12] if c else "-" for c in cells),
                "differs" if a["differs"] else "same",
            )
        )
        if any(c and "value" in c for c in cells):
            values.append(
                (
                    f"{a['step']}.{a['output']}",
                    *(_json_cell(c["value"]) if c and "value" in c else "-" for c in cells),
                    "differs" if a["differs"] else "",
                )
            )
    if rows:
        sha_heads = [f"SHA256 {letter}" for letter in letters]
        lines += ["", table(("STEP.OUTPUT", *letters, *sha_heads, ""), rows)]
    if values:
        lines += ["", table(("VALUE", *letters, ""), values)]
    return "\n".join(lines)
