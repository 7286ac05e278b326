"""Pipelines the dashboard tests run: metrics, a JSON output, an HTML report, an order edge."""

from __future__ import annotations

from typing import Annotated

from zenml_bridge import HTML, StopPipeline, get_step_context, pipeline, step


@step
def load(rows: int = 3) -> list[int]:
    return list(range(rows))


@step
def score(data: list[int], label: str = "x") -> Annotated[dict, "summary"]:
    get_step_context().log_metric("mean", sum(data) / max(len(data), 1))
    get_step_context().log_metric("rows", len(data))
    return {"n": len(data), "label": label}


@step
def report(summary: dict) -> Annotated[HTML, "report"]:
    # The label is user text: a report escapes it like any page would.
    import html

    return HTML(
        "<!doctype html><title>Score report</title>"
        f"<h1 id='headline'>Score report: {summary['n']} rows</h1>"
        f"<p>label {html.escape(str(summary['label']))}</p>"
    )


@step
def notify() -> str:
    return "done"


@pipeline
def scored(rows: int = 3, label: str = "x") -> None:
    summary = score(load(rows=rows), label=label)
    page = report(summary)
    notify(after=[page])


@step
def gate(summary: dict, limit: int = 4) -> dict:
    if summary["n"] > limit:
        raise StopPipeline(f"{summary['n']} rows > {limit}")
    return summary


@pipeline
def gated(rows: int = 5) -> None:
    report(gate(score(load(rows=rows))))
