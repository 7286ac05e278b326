"""Model deployers: the stack component that turns a model artifact into a prediction service.

A :class:`ModelDeployer` flavor (``bentoml``, ``seldon``, ...) implements :meth:`~ModelDeployer.
deploy`; the base class records every deployment in the metadata store (table of schema
migration 6) so that any process can list, stop and read the logs of it later
(``zenml-bridge deployments list | stop ID | logs ID``).

Local servers are started with :func:`~zenml_bridge.processes.start_server` (their own process
group, 127.0.0.1, a free port, a health wait) and stopped whole with
:func:`~zenml_bridge.processes.stop_group`; both are re-exported here.

Example:
    >>> from zenml_bridge.deployers import start_server, stop_group
    >>> pgid, port = start_server(                                  # doctest: +SKIP
    ...     ["python", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
    ...     log_path="/tmp/http.log", health_url="http://127.0.0.1:{port}/", timeout=30)
    >>> stop_group(pgid)                                            # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from zenml_bridge.components import StackComponent
from zenml_bridge.errors import BridgeError
from zenml_bridge.processes import (
    TAIL_LINES,
    _start_ticks,
    free_port,
    group_alive,
    log_tail,
    process_tree,
    start_server,
    stop_group,
)

__all__ = [
    "STATUSES",
    "TAIL_LINES",
    "Deployment",
    "DeploymentGoneError",
    "ModelDeployer",
    "deployments_dir",
    "free_port",
    "group_alive",
    "log_tail",
    "process_tree",
    "start_server",
    "stop_group",
]

#: Deployment states: ``running`` (serving), ``stopped`` (stopped by us), ``exited`` (its
#: processes ended without a stop: crashed or killed), ``failed`` (never became healthy).
STATUSES = ("running", "stopped", "exited", "failed")


class DeploymentGoneError(BridgeError):
    """``stop`` of a deployment whose processes had already ended (the record is updated)."""


@dataclasses.dataclass(frozen=True)
class Deployment:
    """One deployment as recorded in the metadata store.

    Attributes:
        id: ``d-`` and 8 hex digits.
        flavor: the deployer flavor (``bentoml``, ``seldon``, ...).
        name: the user's name for the service.
        url: where it answers (``http://127.0.0.1:PORT``).
        status: one of :data:`STATUSES`.
        run_id: the pipeline run that deployed it (None outside a run).
        artifact_id: the model artifact it serves (None when unknown).
        handle: how the flavor reaches the service again, e.g. ``{"pgid": 4242, "port": 3000,
            "log_path": ".../server.log"}``.
        created_at: seconds since the epoch.
    """

    id: str
    flavor: str
    name: str
    url: str
    status: str
    run_id: str | None
    artifact_id: str | None
    handle: Mapping[str, Any]
    created_at: float
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    ended_at: float | None = None
    reason: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Deployment:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})

    @property
    def log_path(self) -> str | None:
        value = self.handle.get("log_path")
        return str(value) if value else None


# -- process groups ---------------------------------------------------------------------------


def deployments_dir() -> Path:
    """Where local deployments keep their logs and files: ``$ZENML_BRIDGE_HOME``'s or the
    project's ``.zenml_bridge/deployments``."""
    from zenml_bridge.config import DIR_NAME, default_home, find_project

    project = find_project()
    home = project / DIR_NAME if project else default_home()
    return home / "deployments"


def _on_this_host(deployment: Deployment) -> bool:
    host = deployment.handle.get("host")
    return not host or host == socket.gethostname()


def _step_store() -> Any:
    """The metadata store of the step running in this thread, if any."""
    from zenml_bridge.runtime.context import _CURRENT

    context = _CURRENT.get()
    stack = getattr(context, "_stack", None) if context is not None else None
    return getattr(stack, "metadata", None)


def current_run_id() -> str | None:
    """The run id of the step running in this thread (None outside a step)."""
    from zenml_bridge.runtime.context import _CURRENT

    context = _CURRENT.get()
    return context.run_id if context is not None else None


def new_deployment_id() -> str:
    return f"d-{uuid.uuid4().hex[:8]}"


class ModelDeployer(StackComponent):
    """Base of model deployer flavors (kind ``model_deployer``).

    A flavor implements :meth:`deploy` (start the service, then :meth:`record` it); the base
    class gives :meth:`list`, :meth:`stop` and :meth:`logs` for services started with
    :func:`start_server` (handle ``{"pgid", "start_ticks", "port", "log_path"}``). A flavor whose
    services live elsewhere (a cluster) overrides :meth:`is_alive`, :meth:`stop_handle` and
    :meth:`read_logs`.

    Args:
        store: the metadata store to record in (default: the active stack's).
        **config: the flavor's options from the stack config.

    Example:
        >>> deployer = ModelDeployer()                       # doctest: +SKIP
        >>> [d.url for d in deployer.list() if d.status == "running"]  # doctest: +SKIP
        ['http://127.0.0.1:41234']
    """

    kind: ClassVar[str] = "model_deployer"
    flavor: ClassVar[str] = "local"

    def __init__(self, store: Any = None, **config: Any) -> None:
        super().__init__(**config)
        self._store = store

    # -- to implement -------------------------------------------------------------------------

    def deploy(
        self, artifact: Any, name: str, config: Mapping[str, Any] | None = None
    ) -> Deployment:
        """Serve ``artifact`` (a model artifact record or a flavor-specific value) as ``name``."""
        raise BridgeError(
            f"The model deployer flavor '{self.flavor}' cannot deploy: it implements no "
            "deploy(). Configure a serving flavor (e.g. `model_deployer: {flavor: bentoml}`)."
        )

    # -- records ------------------------------------------------------------------------------

    @property
    def store(self) -> Any:
        """The metadata store: the one given, the running step's stack's, or the active stack's."""
        if self._store is None:
            self._store = _step_store()
        if self._store is None:
            from zenml_bridge.config import load_settings
            from zenml_bridge.stores.metadata import MetadataStore

            self._store = MetadataStore(load_settings().metadata_url)
        return self._store

    @property
    def records(self) -> Any:
        from zenml_bridge.stores.deployments import DeploymentRecords

        return DeploymentRecords(self.store)

    def record(
        self,
        *,
        deployment_id: str,
        name: str,
        url: str,
        handle: Mapping[str, Any],
        run_id: str | None = None,
        artifact_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        status: str = "running",
    ) -> Deployment:
        """Record a started service and return its :class:`Deployment`."""
        row = {
            "id": deployment_id,
            "flavor": self.flavor,
            "name": name,
            "url": url,
            "status": status,
            "run_id": run_id,
            "artifact_id": artifact_id,
            "handle": dict(handle),
            "config": dict(config or {}),
            "created_at": time.time(),
        }
        self.records.add(row)
        return Deployment.from_row(row)

    def get(self, deployment_id: str) -> Deployment:
        """A deployment by id or unique prefix, its status refreshed."""
        return self.refresh(Deployment.from_row(self.records.resolve(deployment_id)))

    def list(self) -> list[Deployment]:
        """All recorded deployments, newest first, with their status refreshed."""
        return [self.refresh(Deployment.from_row(r)) for r in self.records.list()]

    def refresh(self, deployment: Deployment) -> Deployment:
        """Mark a ``running`` deployment whose service is gone as ``exited``."""
        if deployment.status != "running" or self.is_alive(deployment):
            return deployment
        ended = time.time()
        reason = "its processes ended without a stop (crashed or killed)"
        self.records.update(deployment.id, status="exited", ended_at=ended, reason=reason)
        return dataclasses.replace(deployment, status="exited", ended_at=ended, reason=reason)

    def stop(self, deployment_id: str) -> Deployment:
        """Stop a deployment (its whole process group) and record it ``stopped``.

        Raises:
            DeploymentGoneError: it was not running (already stopped, or its processes had
                ended on their own; the record then says ``exited``).
        """
        deployment = self.get(deployment_id)
        if deployment.status != "running":
            raise DeploymentGoneError(
                f"Deployment {deployment.id} ('{deployment.name}', {deployment.flavor}) is not "
                f"running: its status is '{deployment.status}'"
                + (f" ({deployment.reason})" if deployment.reason else "")
                + f". Nothing was stopped. See why with `zenml-bridge deployments logs "
                f"{deployment.id}`."
            )
        if not self.stop_handle(deployment):
            # Ended between the refresh and the stop.
            return self.refresh(deployment)
        ended = time.time()
        self.records.update(deployment.id, status="stopped", ended_at=ended, reason="stopped")
        return dataclasses.replace(deployment, status="stopped", ended_at=ended, reason="stopped")

    def logs(self, deployment_id: str, lines: int = 50) -> str:
        """The last ``lines`` lines of a deployment's server log."""
        return self.read_logs(self.get(deployment_id), lines)

    # -- handles (override for services that are not local process groups) -----------------

    def is_alive(self, deployment: Deployment) -> bool:
        pgid = deployment.handle.get("pgid")
        if pgid is None or not _on_this_host(deployment):
            return True  # not a process of this machine: this class cannot tell
        handle = deployment.handle
        return group_alive(int(pgid), handle.get("start_ticks"), handle.get("tree"))

    def stop_handle(self, deployment: Deployment) -> bool:
        """Stop the service; False when it was already gone."""
        pgid = deployment.handle.get("pgid")
        if pgid is None:
            raise BridgeError(
                f"Deployment {deployment.id} ({deployment.flavor}) is not a local process; "
                f"stop it with its flavor's tools (handle: {dict(deployment.handle)})."
            )
        if not _on_this_host(deployment):
            raise BridgeError(
                f"Deployment {deployment.id} runs on host '{deployment.handle.get('host')}', not "
                f"on this one ('{socket.gethostname()}'). Run `zenml-bridge deployments stop "
                f"{deployment.id}` there."
            )
        handle = deployment.handle
        return stop_group(int(pgid), start_ticks=handle.get("start_ticks"), tree=handle.get("tree"))

    def read_logs(self, deployment: Deployment, lines: int) -> str:
        path = deployment.log_path
        if not path or not os.path.exists(path):
            raise BridgeError(
                f"Deployment {deployment.id} has no log file here"
                + (f" ({path})" if path else "")
                + ". Logs live on the machine that started the server."
            )
        return log_tail(path, lines)

    # -- helpers for flavors ------------------------------------------------------------------

    def serve_local(
        self,
        cmd: Sequence[str],
        *,
        name: str,
        health_path: str,
        artifact_id: str | None = None,
        run_id: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        port: int | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Start ``cmd`` with :func:`start_server` and record it; the usual local deploy()."""
        deployment_id = new_deployment_id()
        folder = Path(self.config.get("root") or deployments_dir()) / deployment_id
        log_path = folder / "server.log"
        wait = float(timeout if timeout is not None else self.config.get("timeout", 120))
        pgid, port = start_server(
            cmd,
            log_path=log_path,
            health_url=f"http://127.0.0.1:{{port}}{health_path}",
            cwd=cwd,
            env=env,
            timeout=wait,
            port=port if port is not None else self.config.get("port"),
            what=f"{self.flavor} server for '{name}'",
        )
        # Workers in their own sessions too (pid -> start ticks), see process_tree().
        tree = process_tree(pgid)
        handle = {
            "pgid": pgid,
            "start_ticks": _start_ticks(pgid),
            "tree": tree,
            "port": port,
            "log_path": str(log_path),
            "host": socket.gethostname(),
        }
        try:
            return self.record(
                deployment_id=deployment_id,
                name=name,
                url=f"http://127.0.0.1:{port}",
                handle=handle,
                run_id=run_id,
                artifact_id=artifact_id,
                config=config,
            )
        except BaseException:
            stop_group(pgid, tree=tree)  # never a server without a record
            raise


def python_executable() -> str:
    """The interpreter of this process (servers run with the same environment)."""
    return sys.executable
