"""StepContext.input_artifact: a step learns where its inputs are stored (id, uri, sha256)."""

from __future__ import annotations

import re

import pytest

from zenml_bridge import get_step_context, pipeline, step
from zenml_bridge.errors import BridgeError


@step
def produce(n: int = 3) -> list[int]:
    return list(range(n))


@step
def where(values: list[int]) -> dict:
    info = dict(get_step_context().input_artifact("values"))
    return {"info": info, "total": sum(values)}


@step
def ask_for_missing(values: list[int], label: str = "x") -> int:
    get_step_context().input_artifact("label")  # a parameter, not an artifact
    return 0


@pipeline
def inputs_pipeline(n: int = 3) -> None:
    where(produce(n=n))


@pipeline
def missing_input_pipeline() -> None:
    ask_for_missing(produce())


def test_input_artifact_is_the_upstream_output(stores_env: dict[str, str]) -> None:
    run = inputs_pipeline(n=4)
    produced = run.steps["produce"].outputs["output"]
    seen = run.steps["where"].outputs["output"].load()
    assert seen["total"] == 6
    assert seen["info"] == {
        "id": produced.artifact_id,
        "uri": produced.uri,
        "sha256": produced.sha256,
        "materializer": produced.materializer,
    }


def test_a_name_that_is_no_artifact_input(stores_env: dict[str, str]) -> None:
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "Step 'ask_for_missing' has no input 'label' fed by an upstream step's output "
            "(its artifact inputs: values)."
        ),
    ):
        missing_input_pipeline()
