"""``zenml-bridge compile SRC --target ir|airflow|kubeflow --out PATH``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zenml_bridge.cli.common import add_parameter_option, parse_parameters


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compile",
        help="compile a pipeline into the IR, an Airflow DAG file or Kubeflow YAML",
        description="Compile SRC (package.module:pipeline or path/file.py:pipeline) for a target.",
    )
    parser.add_argument(
        "src", metavar="SRC", help="the pipeline: package.module:name or file.py:name"
    )
    parser.add_argument("--target", default="ir", help="ir (default), airflow or kubeflow")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output file (ir, kubeflow) or dags folder (airflow)",
    )
    add_parameter_option(parser)
    parser.add_argument(
        "--strict", action="store_true", help="treat warnings (settings a target ignores) as errors"
    )
    parser.add_argument("--image", help="container image of the steps (kubernetes/docker/kubeflow)")
    parser.add_argument(
        "--operator",
        default="bash",
        choices=("bash", "kubernetes", "docker"),
        help="Airflow operator profile (default: bash)",
    )
    parser.add_argument(
        "--executor",
        default="container",
        choices=("container", "lightweight"),
        help="Kubeflow executor flavour (default: container; lightweight runs in kfp.local)",
    )
    parser.add_argument(
        "--no-code-archive",
        dest="code_archive",
        action="store_false",
        help="do not ship the project's source to workers (their image already has it)",
    )
    parser.add_argument(
        "--python",
        dest="worker_python",
        metavar="PATH",
        help="Airflow: the Python that runs steps on workers (default: $ZENML_BRIDGE_PYTHON "
        "on the worker, else the Python that runs the Airflow worker)",
    )
    parser.add_argument(
        "--kfp-caching",
        default="off",
        choices=("on", "off"),
        help="Kubeflow: KFP's own task cache (default: off; our cache serves unchanged steps)",
    )
    add_airflow_options(parser)
    parser.set_defaults(handler=_compile)


def _compile(args: argparse.Namespace) -> int:
    import dataclasses

    from zenml_bridge.cli.source import load_pipeline
    from zenml_bridge.compilers import get_compiler
    from zenml_bridge.compilers.base import CompileOptions

    compiler = get_compiler(args.target)
    pipeline = load_pipeline(args.src).to_ir()
    options = CompileOptions(
        out=args.out,
        parameters=parse_parameters(args.params),
        strict=args.strict,
        image=args.image,
        operator=args.operator,
        executor=args.executor,
        code_archive=args.code_archive,
        extra={"python": args.worker_python} if args.worker_python else {},
    )
    if args.target == "kubeflow":
        options = _kubeflow_extra(options, args)
    if args.target == "airflow":
        options = _airflow_options(args, options)
    if args.target == "ir":
        result = compiler.compile(pipeline, options)
    else:
        components = _stack_components()
        options = dataclasses.replace(options, local_only_components=_local_only(components))
        # Passes, checks and preflight (packages, --out) once, before anything is stored, so a
        # compile that cannot succeed publishes nothing; then publish and write.
        prepared = _check_before_publishing(compiler, pipeline, options)
        options = _publish(pipeline, options, components)
        result = compiler.finish(prepared, options)
    for warning in result.warnings:
        print(warning)  # a Problem prints its own "warning:" prefix
    for path in result.paths:
        print(f"wrote {path}")
    for note in result.notes:
        print(note)
    return 0


def _check_before_publishing(compiler: Any, pipeline: Any, options: Any) -> Any:
    """Refuse a compile the target cannot do before anything is stored; the prepared pipeline.

    The IR references are placeholders here: _publish fills in real ones (valid by
    construction) before ``compiler.finish``.
    """
    import dataclasses

    from zenml_bridge.config import load_settings

    # Where the IR will be stored, so that credentials in the artifact root are refused here.
    ir_uri = f"{load_settings().artifact_root.rstrip('/')}/.zenml_bridge/ir/(stored next)"
    draft = dataclasses.replace(options, ir_uri=ir_uri, ir_sha256="0" * 64)
    return compiler.prepare(pipeline, draft)


def _stack_components() -> dict[str, dict[str, Any]]:
    """The active stack's component blocks, refused here when they hold literal secrets."""
    from zenml_bridge.config import load_settings
    from zenml_bridge.runtime.published_components import check_publishable

    settings = load_settings()
    components = settings.component_configs()
    check_publishable(components, settings.stack)
    return components


def _local_only(components: dict[str, dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """``(kind, flavor)`` of the components whose flavor says ``local_only``; a flavor that
    is not installed here cannot be asked (the workers' copy decides)."""
    import sys

    from zenml_bridge import plugins
    from zenml_bridge.components import component_class, flavor_entry

    found = []
    for kind, block in sorted(components.items()):
        flavor = str(block.get("flavor", ""))
        if plugins.find_plugin(plugins.FLAVORS, flavor_entry(kind, flavor)) is None:
            print(
                f"note: the {kind} flavor '{flavor}' is not installed here; the workers must "
                "have it (and whether it runs there is not checked)",
                file=sys.stderr,
            )
            continue
        if getattr(component_class(kind, flavor), "local_only", False):
            found.append((kind, flavor))
    return tuple(found)


def _publish(pipeline: Any, options: Any, components: dict[str, dict[str, Any]]) -> Any:
    """Store the IR, the code archive and the stack's component config where workers read
    them (the artifact store)."""
    import dataclasses

    from zenml_bridge.config import load_settings
    from zenml_bridge.runtime import code_archive, published_components
    from zenml_bridge.stores.artifacts import is_local_url

    root = load_settings().artifact_root
    ir_uri, ir_sha256 = code_archive.publish_ir(pipeline, root)
    changes: dict[str, Any] = {"ir_uri": ir_uri, "ir_sha256": ir_sha256}
    if components:
        uri, sha = published_components.publish(components, root)
        changes["components_uri"], changes["components_sha256"] = uri, sha
        kinds = ", ".join(f"{kind}={block.get('flavor')}" for kind, block in components.items())
        print(f"stack components {sha[:12]}: {kinds}")
    if options.code_archive:
        archive = code_archive.build_code_archive(pipeline)
        changes["code_archive_uri"] = code_archive.publish_code_archive(archive, root)
        changes["code_archive_sha256"] = archive.sha256
        print(
            f"code archive {archive.sha256[:12]}: {len(archive.files)} files from {archive.root} "
            f"({len(archive.data) / 1024:.0f} KiB)"
        )
    if is_local_url(root):
        print(f"note: the IR is stored under the local folder {root}; workers must see that path")
    return dataclasses.replace(options, **changes)


def _kubeflow_extra(options: Any, args: argparse.Namespace) -> Any:
    """Kubeflow's own options: KFP caching and the artifact root workers will read from."""
    import dataclasses

    from zenml_bridge.config import load_settings

    root = load_settings().artifact_root
    extra = {**options.extra, "kfp_caching": args.kfp_caching, "worker_artifact_root": root}
    return dataclasses.replace(options, extra=extra)


def add_airflow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dag-id-prefix",
        default="",
        metavar="PREFIX",
        help="Airflow: put PREFIX before the pipeline name in the dag_id (and the file name)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="Airflow: replace a DAG of the same dag_id that another source wrote",
    )


def _airflow_options(args: argparse.Namespace, options: Any) -> Any:
    """The Airflow extras: dag_id prefix, --force, the pipeline's origin, and the project's
    local stores as the DAG's defaults (a worker's ZENML_BRIDGE_* variables still win)."""
    import dataclasses
    import inspect
    import os

    from zenml_bridge.cli.source import load_pipeline
    from zenml_bridge.config import load_settings
    from zenml_bridge.stores.artifacts import is_local_url, local_path

    extra = dict(options.extra)
    extra["dag_id_prefix"] = args.dag_id_prefix
    extra["force"] = args.force
    definition = load_pipeline(args.src)
    try:
        source_file = inspect.getsourcefile(definition.func) or args.src
    except TypeError:
        source_file = args.src
    extra["origin"] = f"{os.path.abspath(source_file)}:{definition.name}"
    changes: dict[str, Any] = {"extra": extra}
    settings = load_settings()
    if options.operator == "bash":
        # Local stores are only meaningful where the tasks run on this machine: bake them in as
        # defaults, so a laptop's Airflow records into the project without any variable.
        if _is_local_sqlite(settings.metadata_url):
            changes["metadata_url"] = settings.metadata_url
        if is_local_url(settings.artifact_root):
            changes["artifact_root"] = os.path.abspath(local_path(settings.artifact_root))
    return dataclasses.replace(options, **changes)


def _is_local_sqlite(url: str) -> bool:
    database = url.partition(":///")[2].split("?", 1)[0]
    return url.startswith("sqlite:///") and database not in ("", ":memory:")
