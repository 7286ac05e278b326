"""A chain: load -> double -> total."""

from __future__ import annotations

from zenml_bridge import pipeline, step


@step
def load(rows: int = 10) -> list[int]:
    """Make the numbers 0..rows-1."""
    return list(range(rows))


@step
def double(values: list[int]) -> list[int]:
    return [2 * v for v in values]


@step(retries=2, retry_delay=5)
def total(values: list[int]) -> int:
    return sum(values)


@pipeline
def linear() -> None:
    """Three steps in a row."""
    total(double(load()))
