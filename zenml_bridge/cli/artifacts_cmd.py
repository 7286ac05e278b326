"""``zenml-bridge artifacts list | show ID [--open [NAME]] [--out FILE] | lineage ID``."""

from __future__ import annotations

import argparse
from typing import Any

from zenml_bridge.cli.runs_cmd import store, table, when
from zenml_bridge.redact import redact_url


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("artifacts", help="list artifacts, show one, show its lineage")
    actions = parser.add_subparsers(dest="artifacts_command", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="recent artifacts, newest first")
    listing.add_argument("--run", help="only artifacts produced by this run (id or 'latest')")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one artifact: producer, URI, hash, materializer")
    show.add_argument("artifact", metavar="ID", help="artifact id or unique prefix")
    show.add_argument("--value", action="store_true", help="load it and print its value")
    show.add_argument(
        "--open",
        nargs="?",
        const="",
        metavar="NAME",
        help="open a visualization in the browser (default: the only one, else the first "
        ".html); prints its path when no browser is available",
    )
    show.add_argument(
        "--out",
        metavar="FILE",
        help="write a visualization to FILE (the one --name chooses, default as for --open)",
    )
    show.add_argument("--name", help="which visualization --out writes")
    show.set_defaults(handler=_show)
    lineage = actions.add_parser("lineage", help="which run/step produced it, which consumed it")
    lineage.add_argument("artifact", metavar="ID", help="artifact id or unique prefix")
    lineage.set_defaults(handler=_lineage)


def _list(args: argparse.Namespace) -> int:
    metadata = store()
    run_id = metadata.resolve_run(args.run)["run_id"] if args.run else None
    rows = [
        (
            a["artifact_id"],
            f"{a['step']}.{a['output']}",
            a["run_id"],
            a["content_sha256"][:16],
            a["materializer"],
            a["size"],
            when(a["created_at"]),
        )
        for a in metadata.list_artifacts(limit=args.limit, run_id=run_id)
    ]
    if not rows:
        print("No artifacts yet.")
        return 0
    print(table(("ARTIFACT", "OUTPUT", "RUN", "SHA256", "MATERIALIZER", "BYTES", "CREATED"), rows))
    return 0


def _show(args: argparse.Namespace) -> int:
    metadata = store()
    art = metadata.resolve_artifact(args.artifact)
    print(f"Artifact      {art['artifact_id']}")
    print(f"Produced by   run {art['run_id']}, step {art['step']}, output {art['output']}")
    print(f"URI           {redact_url(art['uri'])}")
    print(f"Content hash  sha256:{art['content_sha256']}")
    print(f"Materializer  {art['materializer']}@{art['materializer_version']}")
    print(f"Type          {art['type_name']}")
    print(f"Size          {art['size']} bytes")
    print(f"Created       {when(art['created_at'])}")
    from zenml_bridge.stores import visualizations

    pages = visualizations.listed(metadata, art["artifact_id"])
    for i, page in enumerate(pages):
        label = "Visualization" if i == 0 else ""
        print(f"{label:<13} {page['name']}  ({page['media_type']}, {page['size']} bytes)")
    if args.open is not None or args.out:
        _visualization(args, art, [p["name"] for p in pages])
    if args.value:
        text = repr(_record(art).load())
        print(f"Value         {text[:2000]}{' ...' if len(text) > 2000 else ''}")
    return 0


def _record(art: Any) -> Any:
    from zenml_bridge.runtime.records import ArtifactRecord

    return ArtifactRecord(
        artifact_id=art["artifact_id"],
        uri=art["uri"],
        sha256=art["content_sha256"],
        materializer=art["materializer"],
        materializer_version=art["materializer_version"],
    )


def choose(names: list[str], wanted: str | None, artifact: str) -> str:
    """The visualization ``wanted`` names, or the default: the only one, else the first .html."""
    from zenml_bridge.errors import BridgeError, did_you_mean

    if not names:
        raise BridgeError(
            f"Artifact {artifact} has no visualizations. Its materializer adds them with "
            "visualizations(value) (see docs/materializers.md); a step may return "
            "zenml_bridge.HTML for a page."
        )
    if wanted:
        if wanted not in names:
            raise BridgeError(
                f"Artifact {artifact} has no visualization '{wanted}'."
                + did_you_mean(wanted, names)
                + f" Its visualizations: {', '.join(names)}."
            )
        return wanted
    pages = [n for n in names if n.lower().endswith(".html")]
    return (pages or names)[0]


def _visualization(args: argparse.Namespace, art: Any, names: list[str]) -> None:
    """``--out FILE`` writes the verified bytes; ``--open`` shows them in the browser."""
    import os
    import tempfile
    import webbrowser

    record = _record(art)
    if args.out:
        name = choose(names, args.name, art["artifact_id"])
        data = record.visualizations()[name]
        temp = f"{args.out}.tmp-{os.getpid()}"
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, args.out)  # nothing half-written under the name asked for
        print(f"Wrote         {name} -> {args.out} ({len(data)} bytes)")
    if args.open is not None:
        name = choose(names, args.open, art["artifact_id"])
        data = record.visualizations()[name]  # verified: the artifact's hash covers it
        folder = tempfile.mkdtemp(prefix=f"zenml-bridge-{art['artifact_id'][:12]}-")
        path = os.path.join(folder, name)
        with open(path, "wb") as handle:
            handle.write(data)
        uri = "file://" + os.path.abspath(path)
        if webbrowser.open(uri):
            print(f"Opened        {name} in the browser ({path})")
        else:
            print(f"No browser available; the visualization is at {path}")


def _lineage(args: argparse.Namespace) -> int:
    metadata = store()
    art = metadata.resolve_artifact(args.artifact)
    consumers = metadata.consumers(art["artifact_id"])
    print(f"Artifact {art['artifact_id']} (sha256:{art['content_sha256'][:16]})")
    print(f"  produced by  run {art['run_id']}  step {art['step']}  output {art['output']}")
    if not consumers:
        print("  consumed by  nobody yet")
    for c in consumers:
        print(f"  consumed by  run {c['run_id']}  step {c['step']}  input {c['input']}")
    for reuse in metadata.cache_reuses(art["artifact_id"]):
        print(f"  reused by    run {reuse['run_id']}  step {reuse['step']}  (cache hit)")
    return 0
