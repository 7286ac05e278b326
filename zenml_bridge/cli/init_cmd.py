"""``zenml-bridge init [PATH] [--template NAME]``: create ``.zenml_bridge/`` (config,
metadata.db, artifacts/), optionally after copying a project template into PATH.

Project templates are package data (``zenml_bridge/templates/projects/<name>/``), so they work
from an installed wheel as from a checkout. ``--template list`` lists them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "init",
        help="create .zenml_bridge/ (config, metadata.db, artifacts/) in a project folder",
        description="Create .zenml_bridge/ in PATH (default: the working directory). Commands "
        "run anywhere below PATH find it, like git.",
    )
    parser.add_argument("path", nargs="?", default=".", type=Path, help="project folder")
    parser.add_argument(
        "--template",
        metavar="NAME",
        help="first copy the project template NAME into PATH ('list' lists them)",
    )
    parser.add_argument(
        "--force", action="store_true", help="with --template: overwrite files that exist"
    )
    parser.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> int:
    if args.template == "list":
        from zenml_bridge.templates import describe, template_names

        for name in template_names():
            print(f"{name:10}  {describe(name)}")
        return 0
    if args.template is not None:
        from zenml_bridge.templates import copy_template

        written = copy_template(args.template, args.path, force=args.force)
        print(f"Copied template '{args.template}' into {args.path.resolve()}:")
        for name in written:
            print(f"  {name}")
    code = _init_home(args)
    if args.template is not None:
        print(
            "Next: read README.md there, then `zenml-bridge run --config run.yaml` in that folder."
        )
    return code


def _init_home(args: argparse.Namespace) -> int:
    from zenml_bridge.config import CONFIG_NAME, DIR_NAME, load_settings, write_config
    from zenml_bridge.errors import BridgeError
    from zenml_bridge.redact import redact_url as describe_url
    from zenml_bridge.runtime.stack import open_stack

    project = args.path.resolve()
    home = project / DIR_NAME
    if (home / CONFIG_NAME).is_file():
        print(f"{home} already exists; nothing changed.")
        return 0
    try:
        write_config(project, {"version": 1, "active_stack": "default", "stacks": {"default": {}}})
        (home / ".gitignore").write_text("# runs and artifacts stay local\n*\n!config.yaml\n")
    except OSError as exc:
        raise BridgeError(
            f"Cannot create {home} ({exc.strerror}). Run init in a folder you can write to."
        ) from None
    settings = load_settings(cwd=project)
    open_stack(settings)  # creates metadata.db (schema) and artifacts/
    print(f"Initialized zenml-bridge in {home}")
    print(f"  metadata:  {describe_url(settings.metadata_url)}")
    print(f"  artifacts: {describe_url(settings.artifact_root)}")
    return 0
