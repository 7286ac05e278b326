"""Pipelines of the real-deployment tests: data through a diamond, retries, a timeout, a kill."""

from __future__ import annotations

import sys
import time
from typing import Annotated

from zenml_bridge import pipeline, step


@step
def source(rows: int) -> list[int]:
    """Numbers 0..rows-1."""
    return list(range(rows))


@step
def evens(values: list[int]) -> list[int]:
    return [v for v in values if v % 2 == 0]


@step
def odds(values: list[int]) -> list[int]:
    return [v for v in values if v % 2]


@step
def join(
    even: list[int], odd: list[int], label: str
) -> tuple[Annotated[dict[str, object], "summary"], Annotated[str, "python"]]:
    # The interpreter that ran the step: the worker's own, found without PATH.
    return {"even": sum(even), "odd": sum(odd), "label": label}, sys.executable


@pipeline
def diamond(rows: int = 10, label: str = "plain") -> None:
    """Split numbers into evens and odds and sum both.

    Args:
        rows: how many numbers to make.
        label: copied into the summary.
    """
    values = source(rows=rows)
    join(evens(values), odds(values), label=label)


@step
def prepare() -> int:
    return 1


@step(retries=1, retry_delay=1)
def explode(value: int) -> int:
    raise RuntimeError(f"step explode fails on purpose ({value})")


@pipeline
def flaky() -> None:
    explode(prepare())


@step(timeout=4)
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pipeline
def sleepy(seconds: float = 120.0) -> None:
    slow(seconds=seconds)


@step
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pipeline
def napping(seconds: float = 120.0) -> None:
    nap(seconds=seconds)
