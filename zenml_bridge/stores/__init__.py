"""Stores: the metadata store (SQL, via SQLAlchemy Core) and the artifact store (fsspec).

Both load on use; ``import zenml_bridge`` imports neither SQLAlchemy nor fsspec.

Example:
    >>> from zenml_bridge.stores import ArtifactStore, MetadataStore   # doctest: +SKIP
    >>> MetadataStore("sqlite:////tmp/zb/metadata.db").list_runs()       # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zenml_bridge.stores.artifacts import ArtifactStore
    from zenml_bridge.stores.metadata import MetadataStore

__all__ = ["ArtifactStore", "MetadataStore"]

_LAZY = {
    "ArtifactStore": "zenml_bridge.stores.artifacts",
    "MetadataStore": "zenml_bridge.stores.metadata",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zenml_bridge.stores' has no attribute {name!r}")
