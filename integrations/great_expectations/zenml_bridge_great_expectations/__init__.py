"""Great Expectations for zenml-bridge: validation gates, a profiler, data-docs pages.

Installing this distribution (``pip install zenml-bridge-great-expectations``) registers the
``great_expectations`` data validator flavor, its step settings and a materializer for
expectation suites through entry points; importing this module does not import GX.

Example:
    >>> import zenml_bridge_great_expectations
    >>> zenml_bridge_great_expectations.NAME
    'great_expectations'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Integration name, as listed by ``zenml-bridge integration list``.
NAME = "great_expectations"

if TYPE_CHECKING:
    from zenml_bridge_great_expectations.settings import GreatExpectationsSettings
    from zenml_bridge_great_expectations.steps import gx_profile, gx_validate
    from zenml_bridge_great_expectations.validator import GreatExpectationsDataValidator

__all__ = [
    "NAME",
    "GreatExpectationsDataValidator",
    "GreatExpectationsSettings",
    "__version__",
    "gx_profile",
    "gx_validate",
]

_LAZY = {
    "GreatExpectationsDataValidator": "zenml_bridge_great_expectations.validator",
    "GreatExpectationsSettings": "zenml_bridge_great_expectations.settings",
    "gx_profile": "zenml_bridge_great_expectations.steps",
    "gx_validate": "zenml_bridge_great_expectations.steps",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zenml_bridge_great_expectations' has no attribute {name!r}")
