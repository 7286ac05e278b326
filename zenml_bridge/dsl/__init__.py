"""Authoring: ``@step`` and ``@pipeline``. Imports only :mod:`zenml_bridge.ir` of ours."""

from __future__ import annotations

from zenml_bridge.dsl.parameters import parameter
from zenml_bridge.dsl.pipeline import Pipeline, pipeline
from zenml_bridge.dsl.step import Step, step
from zenml_bridge.dsl.trace import Invocation, ParameterRef, StepOutput

__all__ = [
    "Invocation",
    "ParameterRef",
    "Pipeline",
    "Step",
    "StepOutput",
    "parameter",
    "pipeline",
    "step",
]
