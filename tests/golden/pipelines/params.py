"""Pipeline parameters of every JSON type, step settings, and a schedule."""

from __future__ import annotations

from zenml_bridge import pipeline, step


@step(
    timeout=120,
    cpu="500m",
    memory="1Gi",
    env={"MODE": "test"},
    retries=1,
    retry_backoff=2.0,
)
def generate(rows: int, seed: int = 0, label: str = "demo") -> list[int]:
    return [(seed + i) % 7 for i in range(rows)]


@step
def summarize(
    values: list[int], options: dict[str, bool], weights: list[float]
) -> dict[str, float]:
    return {"n": float(len(values)), "w": sum(weights), "flags": float(sum(options.values()))}


@pipeline(schedule="0 6 * * *")
def params(
    rows: int = 20,
    seed: int = 1,
    label: str = 'it\'s "quoted"',
    ratio: float = 0.25,
    enabled: bool = True,
    weights: list[float] = [0.5, 0.5],  # noqa: B006 - a JSON default, never mutated
) -> None:
    values = generate(rows=rows, seed=seed, label=label)
    summarize(values, options={"enabled": True}, weights=weights)
