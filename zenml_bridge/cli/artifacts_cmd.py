"""``zenml-bridge artifacts list | show ID | lineage ID``."""

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
    if args.value:
        from zenml_bridge.runtime.records import ArtifactRecord

        record = ArtifactRecord(
            artifact_id=art["artifact_id"],
            uri=art["uri"],
            sha256=art["content_sha256"],
            materializer=art["materializer"],
            materializer_version=art["materializer_version"],
        )
        text = repr(record.load())
        print(f"Value         {text[:2000]}{' ...' if len(text) > 2000 else ''}")
    return 0


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
