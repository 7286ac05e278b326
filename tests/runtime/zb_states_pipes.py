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
    release = os.environ.get("ZB_STATES_RELEASE")
    if release:  # wait until the test creates this file
        deadline = time.monotonic() + 120
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
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


@step
def after(value: int) -> int:
    return value + 1


@pipeline
def waiting3(rows: int = 3) -> None:
    after(wait(first(rows=rows)))


def record_failure(exc: BaseException) -> None:
    """An on_failure hook: appends the exception it received to $ZB_STATES_HOOK."""
    with open(os.environ["ZB_STATES_HOOK"], "a") as handle:
        handle.write(repr(exc) + "\n")


@step(retries=1, on_failure=record_failure)
def tracked(data: list[int]) -> int:
    return len(data)


@step(on_failure=record_failure)
def buggy(data: list[int]) -> int:
    raise ValueError("a bug in the user's step")


@pipeline
def tracked_pipe(rows: int = 3) -> None:
    tracked(first(rows=rows))


@pipeline
def buggy_pipe(rows: int = 3) -> None:
    buggy(first(rows=rows))


@step
def racer(data: list[int]) -> dict[str, int]:
    """Waits for $ZB_STATES_RELEASE after writing its pid to $ZB_STATES_STARTED; returns a
    value that differs between processes unless $ZB_STATES_SAME is set."""
    started = os.environ.get("ZB_STATES_STARTED")
    if started:
        Path(started).write_text(str(os.getpid()))
    release = os.environ["ZB_STATES_RELEASE"]
    deadline = time.monotonic() + 120
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"n": len(data), "who": 0 if os.environ.get("ZB_STATES_SAME") else os.getpid()}


@pipeline
def racing(rows: int = 3) -> None:
    racer(first(rows=rows))


@step
def part(i: int = 0) -> int:
    time.sleep(0.5)  # long enough that 32 steps run at once
    return i


@step
def combine(*values: int) -> int:
    return sum(values)


@pipeline
def fan() -> None:
    combine(*[part(i=i) for i in range(40)])
