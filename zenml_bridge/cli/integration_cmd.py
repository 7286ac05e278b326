"""``zenml-bridge integration list``: installed integrations, found through entry points.

An integration is a separate distribution (``zenml-bridge-mlflow``, ...) that registers itself
in the ``zenml_bridge.integrations`` entry-point group and may add stack component flavors,
settings blocks, materializers or compilers through their groups (all read through the plugin
table, :mod:`zenml_bridge.plugins`). Listing reads package metadata only; nothing is imported
unless ``--check`` asks for it, so the core never depends on any integration.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from zenml_bridge import plugins

GROUP = plugins.INTEGRATIONS
#: Groups whose entries an integration "provides", with the word used in the listing (a
#: flavor is shown as "<kind> <flavor>", e.g. "experiment_tracker mlflow").
PROVIDES = {
    plugins.FLAVORS: "",
    plugins.SETTINGS: "settings",
    plugins.MATERIALIZERS: "materializer",
    plugins.COMPILERS: "compiler",
}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass
class Integration:
    """One installed integration, as read from package metadata."""

    name: str
    module: str
    distribution: str
    version: str
    provides: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    status: str = "installed"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "integration",
        help="list installed integrations (MLflow, ...)",
        description="Integrations are separate packages (e.g. zenml-bridge-mlflow) found "
        "through the 'zenml_bridge.integrations' entry-point group.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser(
        "list", help="show installed integrations with their versions and what they provide"
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument(
        "--check", action="store_true", help="also import each integration and report failures"
    )
    listing.set_defaults(handler=run_list)


def installed(check: bool = False) -> list[Integration]:
    """Integrations registered in the ``zenml_bridge.integrations`` group, sorted by name.

    Example:
        >>> [i.name for i in installed()]  # doctest: +SKIP
        ['mlflow']
    """
    provided: dict[str, list[str]] = {}
    for group, word in PROVIDES.items():
        for name, plugin in plugins.installed(group).items():
            label = name.replace(".", " ", 1) if group == plugins.FLAVORS else f"{word} {name}"
            provided.setdefault(_norm(plugin.distribution or ""), []).append(label)
    found: dict[str, Integration] = {}
    for name, plugin in plugins.installed(GROUP).items():
        item = Integration(
            name=name,
            module=plugin.target,
            distribution=plugin.distribution or "?",
            version=plugin.version or "?",
            provides=sorted(set(provided.get(_norm(plugin.distribution or ""), []))),
            requires=_requirements(plugin.distribution),
        )
        if check:
            try:
                importlib.import_module(plugin.target.split(":", 1)[0])
            except Exception as exc:  # report, do not crash the listing
                item.status = f"broken: {type(exc).__name__}: {exc}"
            else:
                item.status = "ok"
        found[name] = item
    return sorted(found.values(), key=lambda i: i.name)


def run_list(args: argparse.Namespace) -> int:
    items = installed(check=args.check)
    if args.json:
        print(json.dumps([asdict(i) for i in items], indent=2, sort_keys=True))
        return 0 if all(not i.status.startswith("broken") for i in items) else 1
    if not items:
        print(
            "No integrations installed. Install one, e.g. `pip install zenml-bridge-mlflow` "
            "(or `pip install -e integrations/mlflow` in a checkout)."
        )
        return 0
    rows = [("NAME", "DISTRIBUTION", "VERSION", "PROVIDES", "REQUIRES", "STATUS")]
    for i in items:
        rows.append(
            (
                i.name,
                i.distribution,
                i.version,
                ", ".join(i.provides) or "-",
                ", ".join(i.requires) or "-",
                i.status,
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0 if all(not i.status.startswith("broken") for i in items) else 1


def _requirements(distribution: str | None) -> list[str]:
    """Installed versions of a distribution's own (non-extra, non-core) requirements."""
    try:
        requires = metadata.distribution(distribution).requires or [] if distribution else []
    except metadata.PackageNotFoundError:
        requires = []
    result = []
    for line in requires:
        if "extra ==" in line.replace('"', "").replace("'", ""):
            continue
        match = _NAME.match(line)
        if not match or _norm(match.group(1)) == "zenml-bridge":
            continue
        name = match.group(1)
        try:
            result.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            result.append(f"{name} MISSING")
    return result


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
