"""A diamond: top -> (left, right) -> bottom, plus an order-only edge."""

from __future__ import annotations

from zenml_bridge import pipeline, step


@step
def top() -> str:
    return "x"


@step
def left(text: str) -> str:
    return text + "l"


@step
def right(text: str) -> str:
    return text + "r"


@step(cache=False)
def bottom(a: str, b: str) -> str:
    return a + b


@step
def report() -> None:
    print("done")


@pipeline
def diamond() -> None:
    t = top()
    result = bottom(left(t), right(t))
    report(after=result)
