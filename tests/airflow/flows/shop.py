"""A small pipeline with parameters and named outputs, and one whose step always fails."""

from __future__ import annotations

from typing import Annotated

from zenml_bridge import pipeline, step


@step
def orders(rows: int, label: str) -> list[dict[str, object]]:
    """Make ``rows`` orders tagged with ``label``."""
    return [{"id": i, "amount": (i * 7) % 11, "label": label} for i in range(rows)]


@step
def split(
    items: list[dict[str, object]],
) -> tuple[Annotated[list[int], "small"], Annotated[list[int], "large"]]:
    amounts = [int(str(item["amount"])) for item in items]
    return [a for a in amounts if a < 5], [a for a in amounts if a >= 5]


@step(retries=1, retry_delay=1)
def report(
    small: list[int], large: list[int], label: str
) -> Annotated[dict[str, object], "summary"]:
    return {"small": sum(small), "large": sum(large), "label": label}


@pipeline
def shop(rows: int = 12, label: str = 'it\'s {{ ds }} "q" \\n $HOME') -> None:
    small, large = split(orders(rows=rows, label=label))
    report(small, large, label=label)


@step
def prepare() -> int:
    return 1


@step(retries=1, retry_delay=1)
def explode(value: int) -> int:
    raise RuntimeError(f"step explode fails on purpose ({value})")


@pipeline
def failing() -> None:
    explode(prepare())
