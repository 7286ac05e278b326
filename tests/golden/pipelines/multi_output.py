"""A step with two named outputs feeding two consumers."""

from __future__ import annotations

from typing import Annotated

from zenml_bridge import pipeline, step


@step
def make(n: int = 6) -> list[int]:
    return list(range(n))


@step
def split(
    values: list[int], fraction: float = 0.5
) -> tuple[Annotated[list[int], "train"], Annotated[list[int], "test"]]:
    cut = int(len(values) * fraction)
    return values[:cut], values[cut:]


@step
def fit(train: list[int]) -> Annotated[float, "model"]:
    return sum(train) / max(len(train), 1)


@step
def evaluate(model: float, test: list[int]) -> Annotated[dict[str, float], "metrics"]:
    return {"error": sum(abs(v - model) for v in test) / max(len(test), 1)}


@pipeline
def multi_output() -> None:
    train, test = split(make())
    evaluate(fit(train), test)
