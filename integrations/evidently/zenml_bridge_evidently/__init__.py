"""Evidently for zenml-bridge: drift and data-quality reports you can open, gates that stop.

Installing this distribution (``pip install zenml-bridge-evidently``) registers the
``evidently`` data validator flavor and its step settings through entry points; importing this
module does not import Evidently.

Example:
    >>> import zenml_bridge_evidently
    >>> zenml_bridge_evidently.NAME
    'evidently'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Integration name, as listed by ``zenml-bridge integration list``.
NAME = "evidently"

if TYPE_CHECKING:
    from zenml_bridge_evidently.settings import EvidentlySettings
    from zenml_bridge_evidently.steps import drift_gate, evidently_report, evidently_tests
    from zenml_bridge_evidently.validator import EvidentlyDataValidator

__all__ = [
    "NAME",
    "EvidentlyDataValidator",
    "EvidentlySettings",
    "__version__",
    "drift_gate",
    "evidently_report",
    "evidently_tests",
]

_LAZY = {
    "EvidentlyDataValidator": "zenml_bridge_evidently.validator",
    "EvidentlySettings": "zenml_bridge_evidently.settings",
    "drift_gate": "zenml_bridge_evidently.steps",
    "evidently_report": "zenml_bridge_evidently.steps",
    "evidently_tests": "zenml_bridge_evidently.steps",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zenml_bridge_evidently' has no attribute {name!r}")
