"""Backends that turn a pipeline IR into something a target runs.

Targets are entries of the plugin table (:mod:`zenml_bridge.plugins`, group
``zenml_bridge.compilers``): built-ins are ``"module:Class"`` strings imported only when used;
third parties register more through entry points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zenml_bridge import plugins
from zenml_bridge.ir import BridgeError, did_you_mean

if TYPE_CHECKING:
    from zenml_bridge.compilers.base import Compiler

BUILTIN_COMPILERS = plugins.BUILTINS[plugins.COMPILERS]


def available_compilers() -> dict[str, str]:
    """Target name -> ``module:Class`` for built-ins and installed plugins."""
    return {name: p.target for name, p in plugins.plugins(plugins.COMPILERS).items()}


def get_compiler(target: str) -> Compiler:
    """An instance of the compiler for ``target``."""
    if plugins.find_plugin(plugins.COMPILERS, target) is None:
        known = plugins.plugin_names(plugins.COMPILERS)
        raise BridgeError(
            f"There is no compiler for target '{target}'.{did_you_mean(target, known)} "
            f"Targets: {', '.join(known)}."
        )
    compiler_cls = plugins.load_plugin(plugins.COMPILERS, target)
    return compiler_cls()  # type: ignore[no-any-return]
