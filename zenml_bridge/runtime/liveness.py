"""Heartbeats of running runs and steps, and the sweep that marks lost ones ``failed``.

A process that works on a run (the local runner, an entrypoint step process) has one daemon
thread that, every ``ZENML_BRIDGE_HEARTBEAT_INTERVAL`` seconds (default 30), writes the time
into the ``heartbeat_at`` of its running runs (and of its running step, for the entrypoint):
one small transaction per interval, nothing per step. A run or step whose heartbeat is older
than ``ZENML_BRIDGE_LOST_AFTER`` seconds (default 300) has lost its process (SIGKILL, a lost
worker machine): ``zenml-bridge runs list/show`` and the next run or step process on the same
store mark it ``failed`` with the reason ``lost (no heartbeat since ...)``
(:meth:`MetadataStore.sweep_lost`).

When a heartbeat finds its run no longer ``running`` (``zenml-bridge runs cancel``), the local
runner starts no further step of it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from zenml_bridge.errors import BridgeError

ENV_INTERVAL = "ZENML_BRIDGE_HEARTBEAT_INTERVAL"
ENV_LOST_AFTER = "ZENML_BRIDGE_LOST_AFTER"
DEFAULT_INTERVAL = 30.0
DEFAULT_LOST_AFTER = 300.0


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise BridgeError(
            f"{name}={text!r} is not a positive number of seconds. Set it to e.g. {default:g}, "
            "or unset it for the default."
        )
    return value


def interval() -> float:
    """Seconds between two heartbeats (``ZENML_BRIDGE_HEARTBEAT_INTERVAL``)."""
    return _seconds(ENV_INTERVAL, DEFAULT_INTERVAL)


def lost_after() -> float:
    """Seconds without a heartbeat after which a run or step is lost
    (``ZENML_BRIDGE_LOST_AFTER``)."""
    return _seconds(ENV_LOST_AFTER, DEFAULT_LOST_AFTER)


class Heartbeat:
    """The process's heartbeat thread and what it keeps alive (started on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the registrations
        self._beat = threading.Lock()  # held while a heartbeat writes (fork waits for it)
        self._runs: dict[int, tuple[Any, dict[str, int], set[tuple[str, str]]]] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        #: Runs a heartbeat found no longer running (cancelled or lost meanwhile).
        self.gone: set[str] = set()

    def add(self, store: Any, run_id: str, step: str | None = None) -> None:
        with self._lock:
            _, runs, steps = self._runs.setdefault(id(store), (store, {}, set()))
            runs[run_id] = runs.get(run_id, 0) + 1
            if step is not None:
                steps.add((run_id, step))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="zenml-bridge-heartbeat", daemon=True
                )
                self._thread.start()

    def remove(self, store: Any, run_id: str, step: str | None = None) -> None:
        with self._lock:
            entry = self._runs.get(id(store))
            if entry is None:
                return
            _, runs, steps = entry
            steps.discard((run_id, step)) if step is not None else None
            count = runs.get(run_id, 0) - 1
            if count > 0:
                runs[run_id] = count
            else:
                runs.pop(run_id, None)
                steps.difference_update({s for s in steps if s[0] == run_id})
            if not runs:
                del self._runs[id(store)]

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No heartbeat transaction runs inside the block (around ``os.fork``)."""
        with self._beat:
            yield

    def beat_now(self) -> None:
        """Write the heartbeats at once (tests; the thread does it every interval)."""
        with self._lock:
            work = [
                (store, list(runs), sorted(steps)) for store, runs, steps in self._runs.values()
            ]
        with self._beat:
            for store, runs, steps in work:
                try:
                    self.gone.update(store.heartbeat(runs, steps))
                except Exception as exc:  # a busy or unreachable store: try next time
                    print(f"warning: heartbeat not recorded ({exc})", file=sys.stderr)

    def _loop(self) -> None:
        every = interval()
        while True:
            self._wake.wait(every)
            with self._lock:
                if not self._runs:
                    self._thread = None
                    return
            self.beat_now()


HEARTBEAT = Heartbeat()
_SWEPT: dict[str, float] = {}


def maybe_sweep(store: Any, *, force: bool = False) -> list[str]:
    """Mark lost runs and steps of ``store`` failed (at most once a minute per process unless
    ``force``); a failing sweep never stops the caller."""
    now = time.monotonic()
    key = f"{store.url}\0{store.table_prefix}"
    if not force and now - _SWEPT.get(key, -1e9) < 60.0:
        return []
    _SWEPT[key] = now
    try:
        return list(store.sweep_lost(lost_after()))
    except BridgeError:
        raise
    except Exception as exc:
        print(f"warning: could not check for lost runs ({exc})", file=sys.stderr)
        return []
