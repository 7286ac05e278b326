"""Seldon Core for zenml-bridge: SeldonDeployment manifests and a local Seldon model deployer.

Installing this distribution (``pip install zenml-bridge-seldon``) registers the ``seldon``
model deployer flavor, the ``seldon.manifest`` materializer and this integration through entry
points; importing this module does not import seldon-core.

Example:
    >>> import zenml_bridge_seldon
    >>> zenml_bridge_seldon.NAME
    'seldon'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Integration name, as listed by ``zenml-bridge integration list``.
NAME = "seldon"

if TYPE_CHECKING:
    from zenml_bridge_seldon.deployer import SeldonModelDeployer
    from zenml_bridge_seldon.manifest import (
        SeldonManifest,
        SeldonManifestMaterializer,
        build_manifest,
        validate_manifest,
    )
    from zenml_bridge_seldon.model import SeldonModel
    from zenml_bridge_seldon.steps import seldon_deploy, seldon_manifest

__all__ = [
    "NAME",
    "SeldonManifest",
    "SeldonManifestMaterializer",
    "SeldonModel",
    "SeldonModelDeployer",
    "__version__",
    "build_manifest",
    "seldon_deploy",
    "seldon_manifest",
    "validate_manifest",
]

_LAZY = {
    "SeldonModelDeployer": "zenml_bridge_seldon.deployer",
    "SeldonManifest": "zenml_bridge_seldon.manifest",
    "SeldonManifestMaterializer": "zenml_bridge_seldon.manifest",
    "build_manifest": "zenml_bridge_seldon.manifest",
    "validate_manifest": "zenml_bridge_seldon.manifest",
    "SeldonModel": "zenml_bridge_seldon.model",
    "seldon_deploy": "zenml_bridge_seldon.steps",
    "seldon_manifest": "zenml_bridge_seldon.steps",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zenml_bridge_seldon' has no attribute {name!r}")
