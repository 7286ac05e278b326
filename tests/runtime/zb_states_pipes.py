"""Pipelines for the run-state tests (importable by entrypoint and CLI subprocesses).

``wait`` writes the file named by $ZB_STATES_STARTED when it starts, then sleeps (so a test
can signal the process while the step runs). ``flaky`` fails while the file named by
$ZB_STATES_FAIL exists. ``exits`` calls ``os._exit(0)``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from zenml_bridge import pipeline, step


@step
def first(rows: int = 3) -> list[int]:
    return list(range(rows))


@step
def wait(data: list[int]) -> int:
    started = os.environ.get("ZB_STATES_STARTED")
    if started:
        Path(started).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("ZB_STATES_SLEEP", "60")))
    return len(data)


@step(timeout=1)
def slow(data: list[int]) -> int:
    started = os.environ.get("ZB_STATES_STARTED")
    if started:
        Path(started).write_text(str(os.getpid()))
    time.sleep(60)
    return len(data)


@step(retries=1)
def flaky(data: list[int]) -> int:
    flag = os.environ.get("ZB_STATES_FAIL")
    if flag and os.path.exists(flag):
        raise RuntimeError("flaky failed on purpose")
    return sum(data)


@step
def exits(data: list[int]) -> int:
    os._exit(0)


@pipeline
def waiting(rows: int = 3) -> None:
    wait(first(rows=rows))


@pipeline
def timed(rows: int = 3) -> None:
    slow(first(rows=rows))


@pipeline
def retried(rows: int = 3) -> None:
    flaky(first(rows=rows))


@pipeline
def exiting(rows: int = 3) -> None:
    exits(first(rows=rows))
