"""kfp_io: parameters and upstream outputs from KFP's executor input, KFP's executor output."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from pathlib import Path

import pytest
from kfp.dsl import Artifact, Output

from zenml_bridge import ir
from zenml_bridge.runtime import kfp_io
from zenml_bridge.runtime.step_runner import StepResult

INFO = {
    "id": "a1",
    "uri": "/store/p/run/make/output",
    "sha256": "ab" * 32,
    "materializer": "builtins.json",
    "version": "1",
    "type": "builtins.list",
}


def _pipeline() -> ir.Pipeline:
    return ir.Pipeline(
        name="p",
        source="m:p",
        source_file="m.py",
        source_line=1,
        parameters=(
            ir.Parameter(name="rows", type="int", default=10),
            ir.Parameter(name="ratio", type="float", default=0.5),
            ir.Parameter(name="label", type="str", default="x"),
            ir.Parameter(name="anything", type="Any", default=None),
            ir.Parameter(name="maybe", type="int | None", default=None),
        ),
        steps=(
            ir.Step(
                name="use",
                source="m:use",
                source_file="m.py",
                source_line=2,
                code_hash="0" * 64,
                inputs=(
                    ir.InputRef.of_parameter("n", "rows", "int"),
                    ir.InputRef.of_parameter("ratio", "ratio", "float"),
                    ir.InputRef.of_parameter("label", "label", "str"),
                    ir.InputRef.of_parameter("anything", "anything"),
                    ir.InputRef.of_parameter("maybe", "maybe", "int | None"),
                    ir.InputRef.of_output("values", "make", "output"),
                    ir.InputRef.of_output("parts.0", "other", "train"),
                ),
                outputs=(ir.OutputSpec(name="result"),),
            ),
        ),
    )


def _executor_input(tmp_path: Path, **inputs: object) -> dict:
    return {
        "inputs": inputs,
        "outputs": {
            "artifacts": {
                "result": {
                    "artifacts": [
                        {"name": "result", "uri": str(tmp_path / "use" / "result"), "metadata": {}}
                    ]
                }
            },
            "outputFile": str(tmp_path / "use" / "executor_output.json"),
        },
    }


def test_parameters_come_back_in_the_ir_types(tmp_path: Path) -> None:
    # A task's inputs are keyed by the step's argument names ('n' reads parameter 'rows').
    data = _executor_input(
        tmp_path,
        parameterValues={"n": 3.0, "ratio": 2, "label": "5", "anything": "[1, 2]", "maybe": 4.0},
    )
    pipeline = _pipeline()
    values = kfp_io.read_parameters(json.dumps(data), pipeline, pipeline.steps[0])
    assert values == {"rows": 3, "ratio": 2.0, "label": "5", "anything": [1, 2], "maybe": 4}
    assert type(values["rows"]) is int and type(values["ratio"]) is float


def test_missing_parameters_keep_their_defaults(tmp_path: Path) -> None:
    pipeline = _pipeline()
    values, received = kfp_io.run_parameters(
        _executor_input(tmp_path), pipeline, pipeline.steps[0], {}
    )
    assert values == {"rows": 10, "ratio": 0.5, "label": "x", "anything": None, "maybe": None}
    assert received == {}


def test_a_required_parameter_another_step_reads_is_not_missing(tmp_path: Path) -> None:
    pipeline = _pipeline()
    required = ir.Parameter(name="other", type="int", required=True)
    pipeline = dataclasses.replace(pipeline, parameters=(*pipeline.parameters, required))
    values, received = kfp_io.run_parameters(
        _executor_input(tmp_path, parameterValues={"n": 4}), pipeline, pipeline.steps[0], {}
    )
    assert received == {"rows": 4} and "other" not in values


def test_a_parameter_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    pipeline = _pipeline()
    data = _executor_input(tmp_path, parameterValues={"n": "many"})
    with pytest.raises(ir.BridgeError, match="rows"):
        kfp_io.run_parameters(data, pipeline, pipeline.steps[0], {})


def test_upstream_outputs_come_from_input_artifact_metadata(tmp_path: Path) -> None:
    listed = {"artifacts": [{"name": "x", "uri": "/kfp/x", "metadata": {"zenml_bridge": INFO}}]}
    partial = {"artifacts": [{"name": "y", "uri": "/kfp/y", "metadata": {"sha256": "cd"}}]}
    data = _executor_input(tmp_path, artifacts={"values": listed, "parts-0": partial})
    step = _pipeline().steps[0]
    # An artifact without our pointer (not written by zenml-bridge) is not trusted.
    assert kfp_io.read_upstream(data, step) == {"make": {"output": INFO}}
    data["inputs"]["artifacts"]["parts-0"] = listed
    assert kfp_io.read_upstream(data, step) == {
        "make": {"output": INFO},
        "other": {"train": INFO},
    }


def test_write_kfp_outputs_points_kfp_artifacts_at_ours(tmp_path: Path) -> None:
    data = _executor_input(tmp_path)
    result = StepResult(name="use", status="completed", outputs={"result": INFO})
    written = kfp_io.write_kfp_outputs(json.dumps(data), result)
    on_disk = json.loads((tmp_path / "use" / "executor_output.json").read_text())
    assert on_disk == written
    artifact = on_disk["artifacts"]["result"]["artifacts"][0]
    assert artifact["uri"] == str(tmp_path / "use" / "result")  # KFP's location is kept
    assert artifact["metadata"]["zenml_bridge"] == INFO
    assert artifact["metadata"]["sha256"] == INFO["sha256"]
    assert artifact["metadata"]["uri"] == INFO["uri"]
    assert json.loads((tmp_path / "use" / "result").read_text()) == INFO


def test_a_missing_output_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ir.BridgeError, match=re.escape("KFP expects the output 'result'")):
        kfp_io.write_kfp_outputs(_executor_input(tmp_path), {"other": INFO})


@pytest.mark.parametrize("text", ["not json", "[]", '{"inputs": {}}'])
def test_a_broken_executor_input_is_a_clear_error(text: str) -> None:
    with pytest.raises(ir.BridgeError, match="--kfp-executor-input"):
        kfp_io.parse_executor_input(text)


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("minio://mlpipeline/v2/a/b", "/minio/mlpipeline/v2/a/b"),
        ("gs://bucket/a", "/gcs/bucket/a"),
        ("s3://bucket/a", "/s3/bucket/a"),
        ("file:///tmp/a", "/tmp/a"),
        ("/tmp/a", "/tmp/a"),
    ],
)
def test_local_paths_of_kfp_uris(uri: str, path: str) -> None:
    assert kfp_io.local_path(uri) == path


def test_lightweight_function_has_kfp_artifacts_in_its_signature(tmp_path: Path) -> None:
    listed = {"artifacts": [{"name": "x", "uri": "/kfp/x", "metadata": {}}]}
    data = _executor_input(tmp_path, artifacts={"values": listed})
    argv = ["executor_main", "--executor_input", json.dumps(data),
            kfp_io.LIGHTWEIGHT_ARGV_FLAG, json.dumps(["--step", "use"])]  # fmt: skip
    func = kfp_io.lightweight_function(argv)
    parameters = inspect.signature(func).parameters
    assert list(parameters) == ["result"]
    assert parameters["result"].annotation == Output[Artifact]
    assert func.__annotations__["values"] is Artifact


def test_lightweight_function_without_its_arguments_is_a_clear_error() -> None:
    with pytest.raises(ir.BridgeError, match=re.escape("--executor lightweight")):
        kfp_io.lightweight_function(["executor_main", "--executor_input", "{}"])
