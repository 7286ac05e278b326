"""Materializers: how step outputs become files in the artifact store and back.

``select(value)`` picks one by type (most specific class first), ``get(name)`` finds the one
recorded with an artifact, ``register(cls)`` adds one in this process; third-party packages
use the ``zenml_bridge.materializers`` entry-point group. See docs/materializers.md.

Importing this package imports no pandas, numpy or scikit-learn: each built-in lives in its
own module, imported the first time a value of its type is stored or loaded.
"""

from __future__ import annotations

from zenml_bridge.materializers.base import Materializer, join
from zenml_bridge.materializers.registry import (
    GROUP,
    available,
    get,
    register,
    select,
    unregister,
    version_of,
)

__all__ = [
    "GROUP",
    "Materializer",
    "available",
    "get",
    "join",
    "register",
    "select",
    "unregister",
    "version_of",
]
