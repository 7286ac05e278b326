"""``zenml-bridge stack list | register NAME ... | set NAME``: named sets of store URLs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from zenml_bridge.cli.runs_cmd import table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("stack", help="named store URL sets in the project config")
    actions = parser.add_subparsers(dest="stack_command", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="stacks of the project; * marks the active one")
    listing.set_defaults(handler=_list)
    reg = actions.add_parser("register", help="add or replace a stack")
    reg.add_argument("name", metavar="NAME")
    reg.add_argument("--metadata-url", help="SQLAlchemy URL (sqlite:///..., postgresql://...)")
    reg.add_argument("--artifact-root", help="folder or fsspec URL (s3://bucket/prefix)")
    reg.add_argument("--experiment-tracker", metavar="FLAVOR", help="e.g. mlflow")
    reg.add_argument(
        "--tracker-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the tracker (repeatable), e.g. tracking_uri=sqlite:///mlflow.db",
    )
    reg.add_argument("--tracker-on-error", choices=("fail", "skip"), default=None)
    reg.add_argument(
        "--component",
        action="append",
        default=[],
        metavar="KIND=FLAVOR",
        help="a stack component (repeatable), e.g. data_validator=great_expectations",
    )
    reg.add_argument(
        "--component-option",
        action="append",
        default=[],
        metavar="KIND.KEY=VALUE",
        help="an option of a component (repeatable), e.g. model_deployer.port=3000; secrets "
        "as ${ENV_VAR} references",
    )
    reg.add_argument("--set", dest="activate", action="store_true", help="make it active")
    reg.set_defaults(handler=_register)
    use = actions.add_parser("set", help="make a stack the active one")
    use.add_argument("name", metavar="NAME")
    use.set_defaults(handler=_set)


def _home() -> tuple[Path, dict[str, Any]]:
    from zenml_bridge.config import DIR_NAME, config_at, default_home, find_project

    project = find_project()
    home = project / DIR_NAME if project else default_home()
    config = config_at(home)
    config.setdefault("version", 1)
    config.setdefault("active_stack", "default")
    config["stacks"].setdefault("default", {})
    return home, config


def _list(args: argparse.Namespace) -> int:
    from zenml_bridge.config import ENV_ARTIFACT_ROOT, ENV_METADATA_URL, load_settings
    from zenml_bridge.redact import redact_url as describe_url

    home, config = _home()
    settings = load_settings()
    rows = []
    for name, stack in config["stacks"].items():
        stack = stack or {}
        blocks = dict(stack.get("components") or {})
        if stack.get("experiment_tracker"):
            blocks["experiment_tracker"] = stack["experiment_tracker"]
        components = ", ".join(
            f"{kind}={(block or {}).get('flavor', '?')}" for kind, block in sorted(blocks.items())
        )
        rows.append(
            (
                "*" if name == config["active_stack"] else "",
                name,
                # Passwords in URLs are never printed.
                describe_url(stack["metadata_url"])
                if stack.get("metadata_url")
                else "(default) sqlite in " + str(home),
                describe_url(stack.get("artifact_root") or "(default) " + str(home / "artifacts")),
                components or "-",
            )
        )
    print(f"Config: {home / 'config.yaml'}")
    print(table(("", "STACK", "METADATA", "ARTIFACTS", "COMPONENTS"), rows))
    for env in (ENV_METADATA_URL, ENV_ARTIFACT_ROOT):
        if os.environ.get(env):
            print(f"{env} is set and overrides the stack: {describe_url(os.environ[env])}")
    print(
        f"In use: metadata {describe_url(settings.metadata_url)}, "
        f"artifacts {describe_url(settings.artifact_root)}"
    )
    return 0


def _register(args: argparse.Namespace) -> int:
    from zenml_bridge.cli.common import parse_parameters
    from zenml_bridge.config import write_config_file
    from zenml_bridge.errors import BridgeError
    from zenml_bridge.ir import name_problem

    problem = name_problem("Stack", args.name)
    if problem:
        raise BridgeError(problem)
    home, config = _home()
    stack: dict[str, Any] = {}
    if args.metadata_url:
        from zenml_bridge.stores.connect import parse_url

        parse_url(args.metadata_url)  # refuses what is not a SQLAlchemy URL
        stack["metadata_url"] = args.metadata_url
    if args.artifact_root:
        stack["artifact_root"] = args.artifact_root
    if args.experiment_tracker:
        tracker: dict[str, Any] = {"flavor": args.experiment_tracker}
        tracker.update(parse_parameters(args.tracker_option))
        if args.tracker_on_error:
            tracker["on_error"] = args.tracker_on_error
        stack["experiment_tracker"] = tracker
    elif args.tracker_option or args.tracker_on_error:
        raise BridgeError("--tracker-option/--tracker-on-error need --experiment-tracker FLAVOR.")
    components = _components(args.component, args.component_option)
    if components:
        from zenml_bridge.config import check_components

        check_components(components, "command line")
        stack["components"] = components
    replaced = args.name in config["stacks"]
    config["stacks"][args.name] = stack
    if args.activate:
        config["active_stack"] = args.name
    path = write_config_file(home, config)
    verb = "Replaced" if replaced else "Registered"
    print(f"{verb} stack '{args.name}' in {path}" + (" (active)" if args.activate else ""))
    return 0


def _components(pairs: list[str], options: list[str]) -> dict[str, dict[str, Any]]:
    """``--component KIND=FLAVOR`` and ``--component-option KIND.KEY=VALUE`` as blocks."""
    from zenml_bridge.cli.common import parse_parameters
    from zenml_bridge.errors import BridgeError

    components: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        kind, sep, flavor = pair.partition("=")
        if not sep or not kind or not flavor:
            raise BridgeError(
                f"--component {pair!r} is not KIND=FLAVOR; write e.g. "
                "--component data_validator=great_expectations."
            )
        components[kind] = {"flavor": flavor}
    for name, value in parse_parameters(options).items():
        kind, sep, key = name.partition(".")
        if not sep or kind not in components:
            raise BridgeError(
                f"--component-option {name}=... names no component given with --component; "
                "write it as KIND.KEY=VALUE after --component KIND=FLAVOR."
            )
        components[kind][key] = value
    return components


def _set(args: argparse.Namespace) -> int:
    from zenml_bridge.config import write_config_file
    from zenml_bridge.errors import BridgeError, did_you_mean

    home, config = _home()
    if args.name not in config["stacks"]:
        raise BridgeError(
            f"There is no stack '{args.name}'."
            + did_you_mean(args.name, config["stacks"])
            + f" Stacks: {', '.join(config['stacks'])}. Add one with `zenml-bridge stack "
            "register NAME --metadata-url URL --artifact-root URL`."
        )
    config["active_stack"] = args.name
    path = write_config_file(home, config)
    print(f"Active stack: {args.name} ({path})")
    return 0
