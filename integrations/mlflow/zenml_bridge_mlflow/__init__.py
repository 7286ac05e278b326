"""MLflow for zenml-bridge: experiment tracking, model logging and registry steps.

Installing this distribution (``pip install zenml-bridge-mlflow``) registers the ``mlflow``
experiment tracker flavor, the ``mlflow.model`` materializer and this integration through
entry points; importing this module does not import MLflow.

Example:
    >>> import zenml_bridge_mlflow
    >>> zenml_bridge_mlflow.NAME
    'mlflow'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Integration name, as listed by ``zenml-bridge integration list``.
NAME = "mlflow"

if TYPE_CHECKING:
    from zenml_bridge_mlflow.context import active_step_run, step_run
    from zenml_bridge_mlflow.materializer import MLflowModelMaterializer
    from zenml_bridge_mlflow.model import MLflowModel
    from zenml_bridge_mlflow.steps import load_registered_model, log_model, register_model
    from zenml_bridge_mlflow.tracker import MLflowExperimentTracker

__all__ = [
    "NAME",
    "MLflowExperimentTracker",
    "MLflowModel",
    "MLflowModelMaterializer",
    "__version__",
    "active_step_run",
    "load_registered_model",
    "log_model",
    "register_model",
    "step_run",
]

_LAZY = {
    "MLflowExperimentTracker": "zenml_bridge_mlflow.tracker",
    "active_step_run": "zenml_bridge_mlflow.context",
    "step_run": "zenml_bridge_mlflow.context",
    "MLflowModel": "zenml_bridge_mlflow.model",
    "MLflowModelMaterializer": "zenml_bridge_mlflow.materializer",
    "log_model": "zenml_bridge_mlflow.steps",
    "register_model": "zenml_bridge_mlflow.steps",
    "load_registered_model": "zenml_bridge_mlflow.steps",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zenml_bridge_mlflow' has no attribute {name!r}")
