"""The runtime: runs steps and pipelines against the stores (loaded on use).

``run_pipeline`` is what calling a ``@pipeline`` does; ``run_step`` runs one step and is shared
by the local runner and ``python -m zenml_bridge.entrypoint``. Importing this package imports
nothing heavy; :mod:`zenml_bridge.runtime.tracking` stays importable on its own.

Example:
    >>> from zenml_bridge.runtime import run_pipeline     # doctest: +SKIP
    >>> run = run_pipeline(training, {"rows": 500})       # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zenml_bridge.runtime.local import RunFailed, StepEvent, run_pipeline
    from zenml_bridge.runtime.records import ArtifactRecord, RunRecord, StepRecord, load_run
    from zenml_bridge.runtime.step_runner import StepResult, run_step

__all__ = [
    "ArtifactRecord",
    "RunFailed",
    "RunRecord",
    "StepEvent",
    "StepRecord",
    "StepResult",
    "load_run",
    "run_pipeline",
    "run_step",
]

_LAZY = {
    "run_pipeline": "zenml_bridge.runtime.local",
    "RunFailed": "zenml_bridge.runtime.local",
    "StepEvent": "zenml_bridge.runtime.local",
    "ArtifactRecord": "zenml_bridge.runtime.records",
    "RunRecord": "zenml_bridge.runtime.records",
    "StepRecord": "zenml_bridge.runtime.records",
    "load_run": "zenml_bridge.runtime.records",
    "StepResult": "zenml_bridge.runtime.step_runner",
    "run_step": "zenml_bridge.runtime.step_runner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zenml_bridge.runtime' has no attribute {name!r}")
