"""The pipeline IR: one versioned, JSON-serializable description of a pipeline.

This package imports nothing else of zenml-bridge (checked by import-linter).

Example:
    >>> from zenml_bridge.ir import dumps, loads, sha256
    >>> text = dumps(pipeline_ir)            # doctest: +SKIP
    >>> loads(text, expected_sha256=sha256(pipeline_ir)) == pipeline_ir   # doctest: +SKIP
"""

from __future__ import annotations

from zenml_bridge.ir.codec import (
    canonical_json,
    dumps,
    from_dict,
    json_schema,
    loads,
    sha256,
    to_dict,
)
from zenml_bridge.ir.errors import BridgeError, IRValidationError, did_you_mean
from zenml_bridge.ir.model import (
    IR_VERSION,
    JSON,
    InputRef,
    OutputSpec,
    Parameter,
    Pipeline,
    Resources,
    RetryPolicy,
    Step,
)
from zenml_bridge.ir.validate import (
    check_run_parameters,
    json_problem,
    k8s_name,
    name_problem,
    topological_order,
    validate,
)

__all__ = [
    "IR_VERSION",
    "JSON",
    "BridgeError",
    "IRValidationError",
    "InputRef",
    "OutputSpec",
    "Parameter",
    "Pipeline",
    "Resources",
    "RetryPolicy",
    "Step",
    "canonical_json",
    "check_run_parameters",
    "did_you_mean",
    "dumps",
    "from_dict",
    "json_problem",
    "json_schema",
    "k8s_name",
    "loads",
    "name_problem",
    "sha256",
    "to_dict",
    "topological_order",
    "validate",
]
