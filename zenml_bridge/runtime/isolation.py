"""Run a step in a forked child process: a timeout that really stops it, and an exit noticed.

The local runner uses a child for a step with ``@step(timeout=...)``; the entrypoint for every
step (one fork per process costs about a millisecond). The child runs the whole
:func:`~zenml_bridge.runtime.step_runner.run_step` (inputs, call, outputs, records) and sends a
small JSON summary back through a pipe. The parent:

- kills the child when the timeout passes, or when the parent itself gets SIGTERM/SIGINT;
  the child stays in the parent's process group (an orchestrator that kills the group, as
  Airflow does, reaches it) and, on Linux, dies with the parent (``PR_SET_PDEATHSIG``) when
  the parent is killed with SIGKILL. Subprocesses that the step itself starts are not killed
  by a timeout;
- treats a child that ends without a summary (``os._exit(0)`` in the step, a segfault, the OOM
  killer) as a failed step, whatever its exit code.

The child is forked, so it starts with everything the parent imported; it abandons (never
closes) the parent's database connections and opens its own. Linux and macOS only: where
``os.fork`` is missing the step runs in-process (and its timeout is not enforced).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from zenml_bridge.errors import BridgeError

#: ``ZENML_BRIDGE_ISOLATE=0`` runs entrypoint steps in-process (no fork).
ENV_ISOLATE = "ZENML_BRIDGE_ISOLATE"


class ChildFailed(Exception):
    """The step's child process timed out or ended without reporting a result."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class RemoteError(Exception):
    """An exception raised in the child, carried back as text."""

    def __init__(self, message: str, trace: str) -> None:
        super().__init__(message)
        self.trace = trace


#: Process ids of the children running steps now (killed when the run is interrupted).
LIVE: set[int] = set()


def kill_children() -> None:
    """Kill every step child process of this process (their process groups)."""
    for pid in list(LIVE):
        _kill(pid)


def can_fork() -> bool:
    return hasattr(os, "fork")


def entrypoint_isolates() -> bool:
    """Whether the entrypoint runs its step in a child (default yes where fork exists)."""
    return can_fork() and os.environ.get(ENV_ISOLATE, "1") != "0"


def run_in_child(
    work: Callable[[], dict[str, Any]],
    *,
    timeout_s: float | None,
    what: str,
    after_fork: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """``work()`` in a forked child; its JSON-able result, or an exception.

    Raises:
        ChildFailed: the timeout passed (the child's process group was killed), or the child
            ended without a result.
        BridgeError: ``work`` raised one in the child (the same message).
        RemoteError: ``work`` raised another exception in the child.
    """
    for flush in (sys.stdout.flush, sys.stderr.flush):
        try:
            flush()
        except Exception:
            pass
    from zenml_bridge.runtime.liveness import HEARTBEAT

    read_fd, write_fd = os.pipe()
    with HEARTBEAT.paused():  # no heartbeat transaction half-way in the child's copy
        parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child
        _child(read_fd, write_fd, work, after_fork, parent)
    os.close(write_fd)
    LIVE.add(pid)
    started = time.monotonic()
    chunks: list[bytes] = []
    status = None
    try:
        deadline = None if timeout_s is None else started + timeout_s
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([read_fd], [], [], wait)
            if not ready:
                _kill(pid)
                status = _reap(pid)
                raise ChildFailed(
                    f"{what} timed out after {timeout_s:g} s (its timeout); its process was "
                    "killed. Raise the step's timeout, or make it faster.",
                    timed_out=True,
                )
            data = os.read(read_fd, 1 << 16)
            if not data:
                break
            chunks.append(data)
        status = _reap(pid)
    except BaseException:
        if status is None:  # a signal to this process (or an error): the child goes too
            _kill(pid)
            _reap(pid)
        raise
    finally:
        LIVE.discard(pid)
        os.close(read_fd)
    payload = b"".join(chunks)
    if not payload:
        raise ChildFailed(f"{what} ended {_describe(status)} before the step finished "
                          "(os._exit() in the step, a crash, or the out-of-memory killer); "
                          "the step is failed.")  # fmt: skip
    message = json.loads(payload)
    if message["ok"]:
        return dict(message["result"])
    if message["bridge"]:
        raise BridgeError(message["error"])
    raise RemoteError(message["error"], message["traceback"])


def _child(
    read_fd: int,
    write_fd: int,
    work: Callable[[], dict[str, Any]],
    after_fork: Callable[[], None] | None,
    parent: int,
) -> None:
    """Run ``work`` and report; never returns (``os._exit``: no parent cleanup runs here)."""
    code = 0
    try:
        os.close(read_fd)
        _die_with_parent(parent)
        # Ctrl-C reaches the whole foreground group: the parent decides and kills the child.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if after_fork is not None:
            after_fork()
        try:
            message: dict[str, Any] = {"ok": True, "result": work()}
        except BaseException as exc:  # reported to the parent, which records it
            message = {
                "ok": False,
                "bridge": isinstance(exc, BridgeError),
                "error": str(exc) if isinstance(exc, BridgeError) else repr(exc),
                "traceback": traceback.format_exc(),
            }
        data = json.dumps(message, default=str).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:
        code = 70
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel sends SIGKILL to this child when its parent dies."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except Exception:
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(70)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0


def _describe(status: int | None) -> str:
    if status is None:
        return "unexpectedly"
    if os.WIFSIGNALED(status):
        from zenml_bridge.runtime.signals import signal_name

        return f"killed by {signal_name(os.WTERMSIG(status))}"
    return f"with exit code {os.waitstatus_to_exitcode(status)}"
