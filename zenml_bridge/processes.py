"""Local server processes: started in their own process group on 127.0.0.1, stopped whole.

:func:`start_server` runs a server in a new session (so stopping it stops every child it
forked), on a free port, bound to 127.0.0.1, and waits until a health URL answers; a server that
exits or never answers is reported with its log tail. :func:`process_tree` records the group's
processes with their start times, so that :func:`stop_group` also ends a child that left the group
(BentoML's worker does) and never signals a process id the system has reused. Model deployers
(:mod:`zenml_bridge.deployers`) use these; so can tests and benchmarks.

Example:
    >>> from zenml_bridge.processes import start_server, stop_group
    >>> pgid, port = start_server(                                  # doctest: +SKIP
    ...     ["python", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
    ...     log_path="/tmp/http.log", health_url="http://127.0.0.1:{port}/", timeout=30)
    >>> stop_group(pgid)                                            # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from zenml_bridge.errors import BridgeError

__all__ = [
    "TAIL_LINES",
    "free_port",
    "group_alive",
    "log_tail",
    "process_tree",
    "start_server",
    "stop_group",
]

#: Lines of a server's log shown in an error.
TAIL_LINES = 30


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
