"""Run by the Airflow interpreter: load a dags folder with Airflow's DagBag, print it as JSON.

Usage: ``python dagbag_probe.py DAGS_DIR [--render]``. Printed: import errors, and per DAG its
schedule, params and tasks (upstream ids, retries, delays, timeouts, operator, and with
``--render`` the task's template fields rendered for a fixed run id). Kept free of zenml-bridge
imports: the Airflow 2 environment of the tests cannot install zenml-bridge (SQLAlchemy < 2).
"""

from __future__ import annotations

import json
import sys
import time
import types
from typing import Any


def load_dagbag(folder: str) -> Any:
    try:  # Airflow 3.x (no example DAGs unless configured)
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=folder, safe_mode=False)
    except ImportError:  # Airflow 2.x
        from airflow.models.dagbag import DagBag

        return DagBag(dag_folder=folder, include_examples=False, safe_mode=False)


def _seconds(value: Any) -> float | None:
    return None if value is None else value.total_seconds()


def _plain(value: Any) -> Any:
    """JSON form of rendered template fields (Kubernetes models, timedeltas, ...)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    return repr(value)


def params_of(dag: Any) -> dict[str, Any]:
    """Param values; a param with no default (a required pipeline parameter) shows as None."""
    values = {}
    for name in dag.params:
        try:
            values[name] = dag.params[name]
        except Exception:  # Airflow's ParamValidationError: required, no value yet
            values[name] = None
    return values


def render(task: Any, dag: Any) -> dict[str, Any]:
    """The task's template fields rendered with Airflow's own Jinja environment."""
    params = params_of(dag)
    # A first try of a manual run (`ti` stands in for the task instance: only try_number is used).
    ti = types.SimpleNamespace(try_number=1)
    context = {
        "run_id": "manual__2024-01-02T03:04:05+00:00",
        "params": params,
        "dag": dag,
        "ti": ti,
    }
    env = dag.get_template_env()
    rendered = {}
    for field in task.template_fields:
        value = getattr(task, field, None)
        rendered[field] = _plain(task.render_template(value, context, env))
    return rendered


def schedule_of(dag: Any) -> str | None:
    """The DAG's schedule as given (Airflow 2 keeps it as ``schedule_interval``)."""
    if "schedule" in vars(dag) or hasattr(type(dag), "schedule"):
        value = dag.schedule
    else:
        value = vars(dag).get("schedule_interval")
    return None if value in (None, "None") else str(value)


def describe(folder: str, with_render: bool) -> dict[str, Any]:
    started = time.perf_counter()
    bag = load_dagbag(folder)
    seconds = time.perf_counter() - started
    dags = {}
    for dag_id, dag in bag.dags.items():
        tasks = {}
        for task in dag.tasks:
            info = {
                "operator": type(task).__name__,
                "upstream": sorted(task.upstream_task_ids),
                "retries": task.retries,
                "retry_delay_s": _seconds(task.retry_delay),
                "retry_exponential_backoff": task.retry_exponential_backoff,
                "max_retry_delay_s": _seconds(task.max_retry_delay),
                "execution_timeout_s": _seconds(task.execution_timeout),
                "do_xcom_push": task.do_xcom_push,
                "skip_on_exit_code": sorted(getattr(task, "skip_on_exit_code", None) or []),
                "owner": task.owner,
                "email": task.email,
                "email_on_failure": task.email_on_failure,
            }
            if with_render:
                info["rendered"] = render(task, dag)
            tasks[task.task_id] = info
        dags[dag_id] = {
            "schedule": schedule_of(dag),
            "catchup": dag.catchup,
            "start_date": dag.start_date.isoformat() if dag.start_date else None,
            "params": params_of(dag),
            "tags": sorted(dag.tags),
            "param_descriptions": {
                name: dag.params.get_param(name).description for name in dag.params
            },
            "dagrun_timeout_s": _seconds(dag.dagrun_timeout),
            "max_consecutive_failed_dag_runs": getattr(
                dag, "max_consecutive_failed_dag_runs", None
            ),
            "callbacks": {
                kind: getattr(getattr(dag, kind, None), "__name__", None)
                for kind in ("on_failure_callback", "on_success_callback")
            },
            "tasks": tasks,
        }
    warnings = getattr(bag, "captured_warnings", {}) or {}
    return {
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "warnings": {str(k): [str(w) for w in v] for k, v in warnings.items()},
        "dags": dags,
        "seconds": seconds,
    }


if __name__ == "__main__":
    # Airflow may log to stdout: the result is the one line after the marker.
    result = describe(sys.argv[1], "--render" in sys.argv[2:])
    print("\nZENML_BRIDGE_PROBE " + json.dumps(result, default=repr))
