"""Pipelines of the issue-12 runtime tests (run values), importable by entrypoint children."""

from __future__ import annotations

from zenml_bridge import log_run_metadata, log_run_metric, pipeline, step


@step
def prepare(rows: int = 3) -> list[int]:
    log_run_metadata({"dataset": "2026-11", "rows": rows})
    return list(range(rows))


@step
def evaluate(data: list[int]) -> float:
    score = sum(data) / 10
    log_run_metric("score", score)
    log_run_metric("seen", len(data))
    return score


@step
def bad_value() -> None:
    log_run_metric("score", "high")  # type: ignore[arg-type]


@pipeline
def scored(rows: int = 3) -> None:
    evaluate(prepare(rows=rows))


@pipeline
def badly_scored() -> None:
    bad_value()
