"""A tracked pipeline for the worker tests: copied into a project, shipped to Airflow and KFP
workers in the code archive. Every step reaches the tracker through the step context."""

from __future__ import annotations

from zenml_bridge import get_step_context, log_run_metric, pipeline, step

from zenml_bridge_mlflow.context import step_run


@step
def numbers(rows: int = 4) -> list[int]:
    get_step_context().log_metric("rows", rows)
    return list(range(rows))


@step(settings={"mlflow": {"autolog": False}})
def total(values: list[int]) -> int:
    result = sum(values)
    context = get_step_context()
    context.log_metric("total", result)
    log_run_metric("total", result)
    import mlflow

    with step_run():  # the step's own MLflow run, found through the stack's tracker
        mlflow.log_param("worker_param", "from-the-worker")
    return result


@pipeline
def tracked(rows: int = 4) -> None:
    total(numbers(rows=rows))
