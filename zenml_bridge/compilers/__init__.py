"""Backends that turn a pipeline IR into something a target runs.

Built-ins are named here as ``"module:Class"`` strings and imported only when used; third
parties register more through the ``zenml_bridge.compilers`` entry-point group.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from zenml_bridge.ir import BridgeError, did_you_mean

if TYPE_CHECKING:
    from zenml_bridge.compilers.base import Compiler

BUILTIN_COMPILERS = {
    "ir": "zenml_bridge.compilers.ir:IRCompiler",
    "airflow": "zenml_bridge.compilers.airflow:AirflowCompiler",
    "kubeflow": "zenml_bridge.compilers.kubeflow:KubeflowCompiler",
}


def available_compilers() -> dict[str, str]:
    """Target name -> ``module:Class`` for built-ins and installed plugins."""
    found = dict(BUILTIN_COMPILERS)
    for ep in entry_points(group="zenml_bridge.compilers"):
        found.setdefault(ep.name, ep.value)
    return found


def get_compiler(target: str) -> Compiler:
    """An instance of the compiler for ``target``."""
    known = available_compilers()
    if target not in known:
        raise BridgeError(
            f"There is no compiler for target '{target}'.{did_you_mean(target, known)} "
            f"Targets: {', '.join(sorted(known))}."
        )
    module_name, _, attr = known[target].partition(":")
    compiler_cls = getattr(import_module(module_name), attr)
    return compiler_cls()  # type: ignore[no-any-return]
