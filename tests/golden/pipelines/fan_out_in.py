"""One source fanned out to three workers, fanned back in with *args."""

from __future__ import annotations

from zenml_bridge import pipeline, step


@step
def source() -> int:
    return 7


@step
def scale(value: int, factor: int = 1) -> int:
    return value * factor


@step
def combine(*parts: int) -> int:
    return sum(parts)


@pipeline
def fan_out_in() -> None:
    value = source()
    combine(*[scale(value, factor=f) for f in (1, 2, 3)])
