"""Signals during a run: SIGTERM/SIGINT become exceptions that are recorded, then re-raised.

What sends them: Ctrl-C (SIGINT), ``kill``, Airflow's ``execution_timeout``, "Mark failed" and a
Kubernetes pod deletion (SIGTERM). While a run or a step process works, :func:`handle_signals`
turns them into :class:`Terminated` (SIGTERM) or :class:`Interrupted` (SIGINT, also a
``KeyboardInterrupt``), so that the running steps and the run are recorded before the process
ends. :func:`reraise` then ends it the conventional way: the previous handler runs, or the
signal is delivered again with its default action (exit status 128 + signal number).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Terminated(BaseException):
    """The process received a termination signal (not an error of the step's code)."""

    def __init__(self, signum: int, previous: Any = signal.SIG_DFL) -> None:
        self.signum = signum
        self.previous = previous
        super().__init__(f"terminated by {signal_name(signum)}")

    @property
    def name(self) -> str:
        return signal_name(self.signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Interrupted(Terminated, KeyboardInterrupt):
    """SIGINT (Ctrl-C): a ``KeyboardInterrupt`` too, for code that catches that."""


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@contextmanager
def handle_signals() -> Iterator[None]:
    """Raise :class:`Terminated`/:class:`Interrupted` on SIGTERM/SIGINT inside the block.

    Only the main thread can install handlers; elsewhere (a run started from a worker thread)
    the block runs with the handlers it has. A signal the process ignores stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    signum: int
    for signum in SIGNALS:
        old = signal.getsignal(signum)
        if old is signal.SIG_IGN or old is None:
            continue
        previous[signum] = old

        def handler(number: int, frame: Any, old: Any = old) -> None:
            # Raised once: further signals while the first one is being recorded are ignored
            # (the block's end, or reraise(), puts the previous handlers back).
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            cls = Interrupted if number == signal.SIGINT else Terminated
            raise cls(number, old)

        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def reraise(exc: Terminated) -> None:
    """End the process (or the caller) as the signal would have without our handler."""
    previous = exc.previous
    if callable(previous) and previous is not signal.default_int_handler:
        previous(exc.signum, None)
        raise exc
    if isinstance(exc, Interrupted):
        raise exc  # a KeyboardInterrupt: the usual ending of Ctrl-C (exit 130 from the CLI)
    if threading.current_thread() is threading.main_thread():
        signal.signal(exc.signum, signal.SIG_DFL)
        os.kill(os.getpid(), exc.signum)
    raise SystemExit(exc.exit_code)
