"""Model deployers: the stack component that turns a model artifact into a prediction service.

A :class:`ModelDeployer` flavor (``bentoml``, ``seldon``, ...) implements :meth:`~ModelDeployer.
deploy`; the base class records every deployment in the metadata store (table of schema
migration 6) so that any process can list, stop and read the logs of it later
(``zenml-bridge deployments list | stop ID | logs ID``).

Local servers are started with :func:`start_server`: their own process group (so stopping one
stops every child it forked), bound to 127.0.0.1, on a free port, waited for until a health URL
answers. :func:`stop_group` stops the whole group.

Example:
    >>> from zenml_bridge.deployers import start_server, stop_group
    >>> pgid, port = start_server(                                  # doctest: +SKIP
    ...     ["python", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
    ...     log_path="/tmp/http.log", health_url="http://127.0.0.1:{port}/", timeout=30)
    >>> stop_group(pgid)                                            # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from zenml_bridge.components import StackComponent
from zenml_bridge.errors import BridgeError

__all__ = [
    "STATUSES",
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
#: Lines of a server's log shown in an error.
TAIL_LINES = 30


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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS says is free on ``host`` now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_port(port: int, host: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise BridgeError(
                f"Port {port} on {host} is in use by another process. Choose another port, or "
                "leave the port unset to let zenml-bridge pick a free one."
            ) from None


def log_tail(path: str | os.PathLike[str] | None, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" when there is none)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _start_ticks(pid: int) -> str | None:
    """The process start time (clock ticks since boot, /proc/PID/stat field 22), None if gone.

    Recorded with a process group id so that a later check never mistakes a new process that
    reused the id for our server.
    """
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _reap(pid: int) -> None:
    """Collect the exit status of our own child ``pid`` (a zombie still counts as alive)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


#: States of /proc/PID/stat that are not a running process (zombie, dead).
_GONE_STATES = ("Z", "X", "x")


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, start ticks) of every live process, from /proc."""
    table: dict[int, tuple[int, int, str]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            if len(fields) > 19 and fields[0] not in _GONE_STATES:
                table[int(entry)] = (int(fields[1]), int(fields[2]), fields[19])
    return table


def _members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of group ``pgid``; [] when /proc is absent."""
    return [pid for pid, (_, group, _) in _proc_table().items() if group == pgid]


def process_tree(pgid: int) -> dict[str, str]:
    """The live processes of group ``pgid`` and all their descendants, in any group.

    Servers' workers may start their own session (BentoML's do): a signal to the group does
    not reach them, and if the parent dies they live on. Recorded in a deployment's handle
    (``"tree"``: pid -> start ticks) and stopped with the group.
    """
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found = [pid for pid, (_, group, _) in table.items() if group == pgid]
    seen = set(found)
    while found:
        for child in children.get(found.pop(), []):
            if child not in seen:
                seen.add(child)
                found.append(child)
    return {str(pid): table[pid][2] for pid in sorted(seen)}


def _alive(recorded: Mapping[str, str] | None) -> list[int]:
    """The pids of ``recorded`` (pid -> start ticks) still running as the same processes."""
    if not recorded:
        return []
    table = _proc_table()
    return [
        int(p) for p, ticks in recorded.items() if int(p) in table and table[int(p)][2] == ticks
    ]


def group_alive(
    pgid: int, start_ticks: str | None = None, tree: Mapping[str, str] | None = None
) -> bool:
    """Whether process group ``pgid`` (or a recorded descendant, ``tree``) still runs.

    With ``start_ticks`` (from the handle), a group whose leader is another process than the
    one started (the id was reused) counts as gone.
    """
    _reap(pgid)
    if os.path.isdir("/proc"):
        if _alive(tree):
            return True
        return _own_group(pgid, start_ticks) and bool(_members(pgid))
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _own_group(pgid: int, start_ticks: str | None) -> bool:
    """False when the group's leader is a newer process that reused the id."""
    if start_ticks is None:
        return True
    leader = _start_ticks(pgid)
    return leader is None or leader == start_ticks


def _signal(pgid: int, pids: Sequence[int], sig: int) -> None:
    """Send ``sig`` to group ``pgid`` (none when 0: never our own group) and to ``pids``."""
    if pgid > 0:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_group(
    pgid: int,
    timeout: float = 10.0,
    start_ticks: str | None = None,
    tree: Mapping[str, str] | None = None,
) -> bool:
    """Stop group ``pgid`` and every descendant of it: SIGTERM, SIGKILL after ``timeout`` s.

    The group gets SIGTERM first, so that a server shuts its workers down itself; descendants
    in other groups (``tree``, and those found now) get it directly when the group is gone.

    Returns:
        True when something was running and is now gone, False when all was already gone.
    """
    if not group_alive(pgid, start_ticks, tree):
        return False
    if not os.path.isdir("/proc"):
        return _stop_without_proc(pgid, timeout)
    own = _own_group(pgid, start_ticks)
    targets = {**(process_tree(pgid) if own else {}), **dict(tree or {})}
    group = pgid if own else 0
    termed: set[int] = set()
    if group and _members(pgid):
        _signal(group, [], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pgid)
        left = _alive(targets)
        if not left and not (group and _members(pgid)):
            return True
        if not (group and _members(pgid)):
            # The group is gone (or was never ours): its orphaned workers get SIGTERM directly.
            orphans = [pid for pid in left if pid not in termed]
            _signal(0, orphans, signal.SIGTERM)
            termed.update(orphans)
        time.sleep(0.05)
    _signal(group, _alive(targets), signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while (_alive(targets) or (group and _members(pgid))) and time.monotonic() < deadline:
        _reap(pgid)
        time.sleep(0.05)
    return True


def _stop_without_proc(pgid: int, timeout: float) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    return True


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_server(
    cmd: Sequence[str],
    *,
    log_path: str | os.PathLike[str],
    health_url: str,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    port: int | None = None,
    what: str = "server",
) -> tuple[int, int]:
    """Start a server in its own process group on 127.0.0.1 and wait until it is healthy.

    ``{port}`` in ``cmd``, ``env`` values and ``health_url`` is replaced by the port (a free
    one unless ``port`` is given). The server's stdout and stderr go to ``log_path``.

    Args:
        cmd: the command; it must bind 127.0.0.1 itself (pass the host in its arguments).
        log_path: file receiving the server's output (its folder is created).
        health_url: URL answering 2xx once the server serves, e.g. ``http://127.0.0.1:{port}/healthz``.
        cwd: working folder of the server.
        env: environment of the server (default: this process's).
        timeout: seconds to wait for health before stopping the group and raising.
        port: a fixed port; an error when it is in use.
        what: how messages name the server (``"BentoML server for 'iris'"``).

    Returns:
        ``(pgid, port)``: the process group id (= the leader's pid) and the port.

    Raises:
        BridgeError: the port is in use, the command cannot start, the server exits, or it is
            not healthy within ``timeout`` (the message carries the log tail; nothing is left
            running).
    """
    if port is None:
        port = free_port()
    else:
        _check_port(port)
    argv = [str(a).replace("{port}", str(port)) for a in cmd]
    url = health_url.replace("{port}", str(port))
    environ = dict(os.environ if env is None else env)
    environ = {k: v.replace("{port}", str(port)) for k, v in environ.items()}
    log = Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session => own process group, pgid == pid
            )
        except OSError as exc:
            raise BridgeError(
                f"Could not start the {what}: {argv[0]!r}: {exc.strerror}. Install it in this "
                "environment (or put it on PATH) and deploy again."
            ) from None
    pgid = process.pid
    deadline = time.monotonic() + timeout
    try:
        while True:
            code = process.poll()
            if code is not None:
                raise BridgeError(
                    f"The {what} exited with code {code} before it became healthy "
                    f"({url}). Its log ({log}) ends with:\n{log_tail(log)}"
                )
            if _healthy(url):
                return pgid, port
            if time.monotonic() >= deadline:
                raise BridgeError(
                    f"The {what} did not become healthy within {timeout:g} s ({url} did not "
                    f"answer); it was stopped. Its log ({log}) ends with:\n{log_tail(log)}\n"
                    "Fix the problem the log shows, or raise the timeout if the server is slow "
                    "to start."
                )
            time.sleep(0.2)
    except BaseException:
        stop_group(pgid)
        process.wait()
        raise


# -- the component ----------------------------------------------------------------------------


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
