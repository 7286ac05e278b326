"""zenml-bridge: ML pipelines written once, run locally, on Airflow and on Kubeflow.

Example:
    >>> from zenml_bridge import pipeline, step
    >>> @step
    ... def load(rows: int = 3) -> list[int]:
    ...     return list(range(rows))
    >>> load(2)
    [0, 1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zenml_bridge.dsl import Pipeline, Step, parameter, pipeline, step
from zenml_bridge.errors import BridgeError, StopPipeline
from zenml_bridge.gates import HTML
from zenml_bridge.gates import MaterializerChoice as Materializer

__version__ = "0.1.0"

if TYPE_CHECKING:
    from zenml_bridge.components import DataValidator, StackComponent
    from zenml_bridge.runtime.context import (
        StepContext,
        get_step_context,
        log_run_metadata,
        log_run_metric,
    )
    from zenml_bridge.settings import StepSettings

__all__ = [
    "HTML",
    "BridgeError",
    "Materializer",
    "DataValidator",
    "Pipeline",
    "StackComponent",
    "Step",
    "StepContext",
    "StopPipeline",
    "StepSettings",
    "__version__",
    "get_step_context",
    "log_run_metadata",
    "log_run_metric",
    "parameter",
    "pipeline",
    "step",
]

_LAZY = {
    "get_step_context": "zenml_bridge.runtime.context",
    "StepContext": "zenml_bridge.runtime.context",
    "log_run_metric": "zenml_bridge.runtime.context",
    "log_run_metadata": "zenml_bridge.runtime.context",
    "StackComponent": "zenml_bridge.components",
    "DataValidator": "zenml_bridge.components",
    "StepSettings": "zenml_bridge.settings",
}


def __getattr__(name: str) -> Any:
    # The runtime (stores, materializers) loads only when a step asks for its context.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zenml_bridge' has no attribute {name!r}")
