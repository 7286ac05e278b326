"""A minimal pipeline: make numbers, then summarize them.

zenml-bridge run --config run.yaml
"""

from __future__ import annotations

from typing import Annotated

from zenml_bridge import get_step_context, pipeline, step


@step
def numbers(count: int = 10) -> list[int]:
    """The numbers 0 .. count-1."""
    return list(range(count))


@step
def summarize(values: list[int], scale: float = 1.0) -> Annotated[dict[str, float], "summary"]:
    """Their scaled mean and total, also logged as metrics."""
    total = scale * sum(values)
    mean = total / max(len(values), 1)
    get_step_context().log_metric("mean", mean)
    return {"total": total, "mean": mean}


@pipeline
def hello(count: int = 10, scale: float = 1.0) -> None:
    """numbers -> summarize."""
    summarize(numbers(count=count), scale=scale)


if __name__ == "__main__":
    run = hello()
    print(run.status, run.steps["summarize"].outputs["summary"].load())
