"""The MLflow run of the running step, for standard steps and for ``mlflow.*`` calls in steps.

The step reaches its stack's tracker through the step context
(``get_step_context().component("experiment_tracker")``); the tracker knows the MLflow run of
each of its running steps (keyed by our run id and step name, so steps running in parallel
threads each find their own). Nothing is kept at module level.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from zenml_bridge.errors import BridgeError


@dataclass(frozen=True, slots=True)
class ActiveStepRun:
    """The MLflow run of the step running now (see :func:`active_step_run`)."""

    tracking_uri: str
    registry_uri: str | None
    experiment_id: str
    run_id: str
    parent_run_id: str


def active_step_run() -> ActiveStepRun:
    """The MLflow run of the calling step; for steps that log models or call MLflow directly.

    Example:
        >>> from zenml_bridge import step
        >>> @step
        ... def report() -> str:
        ...     return active_step_run().run_id
    """
    from zenml_bridge import get_step_context

    try:
        context = get_step_context()
    except Exception as exc:  # outside a step the runtime raises its own error
        raise BridgeError(
            "active_step_run() was called outside a running step. Call it inside a @step "
            "function of a pipeline that runs with the MLflow experiment tracker."
        ) from exc
    found: ActiveStepRun | None = None
    try:
        tracker = context.component("experiment_tracker")
    except BridgeError:
        tracker = None  # no tracker configured: the message below says what to do
    lookup = getattr(tracker, "active_step_run", None)  # another flavor has none
    if lookup is not None:
        found = lookup(context.run_id, context.step_name)
    if found is None:
        raise BridgeError(
            f"Step '{context.step_name}' of pipeline '{context.pipeline_name}' has no MLflow run: "
            "the stack has no MLflow experiment tracker, or tracking was skipped "
            "(on_error: skip). Add `components: {experiment_tracker: {flavor: mlflow}}` to the "
            "stack in .zenml_bridge/config.yaml and check that the tracking server is reachable."
        )
    return found


@contextmanager
def step_run() -> Iterator[Any]:
    """Make the calling step's MLflow run the active run of ``mlflow.*`` calls.

    Example:
        >>> from zenml_bridge import step
        >>> @step
        ... def train() -> None:
        ...     import mlflow
        ...     with step_run():
        ...         mlflow.log_text("notes", "notes.txt")
    """
    import mlflow

    active = active_step_run()
    current = mlflow.active_run()
    if current is not None and current.info.run_id == active.run_id:
        yield current  # autolog already made it active
        return
    with fluent_uris(active.tracking_uri, active.registry_uri):
        run = mlflow.start_run(run_id=active.run_id)
        try:
            yield run
        finally:
            # end_run marks the run FINISHED; the tracker sets the real status at step end.
            mlflow.end_run()


@contextmanager
def fluent_uris(tracking_uri: str, registry_uri: str | None) -> Iterator[None]:
    """Point ``mlflow.*`` calls at our URIs for a while, then put back what was there."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = (
        tracking_utils._tracking_uri,
        registry_utils._registry_uri,
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("MLFLOW_REGISTRY_URI"),
    )
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved[0], saved[1]
        for name, value in (("MLFLOW_TRACKING_URI", saved[2]), ("MLFLOW_REGISTRY_URI", saved[3])):
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
