"""``zenml-bridge deployments list | stop ID | logs ID``: served models of every flavor.

``list`` refreshes each running deployment first (a local server whose process group is gone
becomes ``exited``). ``stop`` of a deployment that is not running is a user error (exit 2) that
says its status and why; nothing is stopped then.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from zenml_bridge.redact import redact_text


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "deployments", help="list, stop and read the logs of model deployments"
    )
    actions = parser.add_subparsers(dest="deployments_command", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="deployments, newest first, status refreshed")
    listing.add_argument("--running", action="store_true", help="only running deployments")
    listing.set_defaults(handler=_list)
    stop = actions.add_parser("stop", help="stop a deployment (its whole process group)")
    stop.add_argument("deployment", metavar="ID", help="deployment id or unique prefix")
    stop.set_defaults(handler=_stop)
    logs = actions.add_parser("logs", help="the last lines of a deployment's server log")
    logs.add_argument("deployment", metavar="ID", help="deployment id or unique prefix")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    logs.set_defaults(handler=_logs)


def deployer_for(flavor: str, store: Any) -> Any:
    """The deployer of ``flavor`` (from the plugin table); the base class when that flavor is
    not installed here (it still lists, stops and reads logs of local process groups)."""
    from zenml_bridge.components import component_class
    from zenml_bridge.deployers import ModelDeployer
    from zenml_bridge.errors import BridgeError

    cls: Any
    try:
        cls = component_class("model_deployer", flavor)
    except BridgeError:
        cls = ModelDeployer
    if not issubclass(cls, ModelDeployer):
        cls = ModelDeployer
    return cls(store=store)


def _store() -> Any:
    from zenml_bridge.config import load_settings
    from zenml_bridge.stores.metadata import MetadataStore, check_writable

    url = load_settings().metadata_url
    check_writable(url)
    return MetadataStore(url)


def _list(args: argparse.Namespace) -> int:
    from zenml_bridge.deployers import Deployment
    from zenml_bridge.stores.deployments import DeploymentRecords

    store = _store()
    rows = DeploymentRecords(store).list()
    deployments = [
        deployer_for(row["flavor"], store).refresh(Deployment.from_row(row)) for row in rows
    ]
    if args.running:
        deployments = [d for d in deployments if d.status == "running"]
    if not deployments:
        print("No deployments. Deploy a model with a deploy step (e.g. bentoml_deploy).")
        return 0
    header = ("ID", "FLAVOR", "NAME", "STATUS", "URL", "RUN", "MODEL ARTIFACT", "CREATED")
    table = [header]
    for d in deployments:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.created_at))
        table.append(
            (
                d.id,
                d.flavor,
                d.name,
                d.status,
                redact_text(d.url),
                d.run_id or "-",
                d.artifact_id or "-",
                created,
            )
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0


def _resolve(deployment: str) -> tuple[Any, Any]:
    from zenml_bridge.deployers import Deployment
    from zenml_bridge.stores.deployments import DeploymentRecords

    store = _store()
    row = DeploymentRecords(store).resolve(deployment)
    return deployer_for(row["flavor"], store), Deployment.from_row(row)


def _stop(args: argparse.Namespace) -> int:
    deployer, deployment = _resolve(args.deployment)
    stopped = deployer.stop(deployment.id)  # DeploymentGoneError (exit 2) when not running
    print(f"Stopped deployment {stopped.id} ('{stopped.name}', {redact_text(stopped.url)}).")
    return 0


def _logs(args: argparse.Namespace) -> int:
    from zenml_bridge.errors import BridgeError

    if args.lines < 1:
        raise BridgeError(f"--lines {args.lines}: give a positive number of lines.")
    deployer, deployment = _resolve(args.deployment)
    text = deployer.logs(deployment.id, args.lines)
    print(redact_text(text) if text else f"(the log of {deployment.id} is empty)")
    return 0
