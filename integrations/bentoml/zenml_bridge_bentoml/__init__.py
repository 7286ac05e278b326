"""BentoML for zenml-bridge: build a Bento from a model artifact and serve it locally.

Installing this distribution (``pip install zenml-bridge-bentoml``) registers the ``bentoml``
model deployer flavor (entry point ``model_deployer.bentoml`` in ``zenml_bridge.flavors``);
importing this module does not import BentoML.

Example:
    >>> import zenml_bridge_bentoml
    >>> zenml_bridge_bentoml.NAME
    'bentoml'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Integration name, as listed by ``zenml-bridge integration list``.
NAME = "bentoml"

if TYPE_CHECKING:
    from zenml_bridge_bentoml.bento import build_bento
    from zenml_bridge_bentoml.deployer import BentoMLModelDeployer
    from zenml_bridge_bentoml.steps import bento_build, bentoml_deploy

__all__ = [
    "NAME",
    "BentoMLModelDeployer",
    "__version__",
    "bento_build",
    "bentoml_deploy",
    "build_bento",
]

_LAZY = {
    "build_bento": "zenml_bridge_bentoml.bento",
    "BentoMLModelDeployer": "zenml_bridge_bentoml.deployer",
    "bento_build": "zenml_bridge_bentoml.steps",
    "bentoml_deploy": "zenml_bridge_bentoml.steps",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zenml_bridge_bentoml' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
