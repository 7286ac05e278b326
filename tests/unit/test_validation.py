"""zenml_bridge.validation without any validation library: the report, the gate, the step."""

from __future__ import annotations

import json
import math

import fsspec
import pytest

from zenml_bridge import StopPipeline, pipeline, step
from zenml_bridge.errors import BridgeError
from zenml_bridge.materializers import registry
from zenml_bridge.validation import (
    ValidationFailed,
    ValidationReport,
    ValidationStep,
    check_frame,
    gate,
    plain_json,
)

REPORT = ValidationReport(
    kind="test", title="T", passed=False, summary={"share": math.nan}, result={"x": [1, 2.5]},
    html="<title>T</title><p>bad</p>",
)  # fmt: skip


def test_report_round_trips_with_its_page_as_visualization(tmp_path: str) -> None:
    materializer = registry.select(REPORT)
    assert materializer.name == "validation.report"
    fs = fsspec.filesystem("file")
    folder = f"{tmp_path}/out"
    materializer.save(REPORT, folder, fs)
    loaded = materializer.load(folder, fs)
    assert loaded.html == REPORT.html and loaded.result == {"x": [1, 2.5]}
    assert loaded.summary == {"share": None}  # NaN is stored as null: the file is strict JSON
    json.loads((tmp_path / "out" / "report.json").read_text())  # type: ignore[operator]
    assert materializer.visualizations(REPORT) == {"report.html": REPORT.html}


def test_gate_stop_fail_warn() -> None:
    with pytest.raises(StopPipeline) as stopped:
        gate("check", "stop", REPORT, "2 columns drifted", REPORT)
    assert stopped.value.reason == "Step 'check': 2 columns drifted"
    assert stopped.value.outputs is REPORT
    with pytest.raises(ValidationFailed, match="Step 'check': 2 columns drifted"):
        gate("check", "fail", REPORT, "2 columns drifted", REPORT)
    gate("check", "warn", REPORT, "2 columns drifted", REPORT)  # no run: only a log line


def test_plain_json_and_check_frame() -> None:
    assert plain_json({"a": (1, float("inf")), 2: {"b"}}) == {"a": [1, None], "2": ["b"]}
    with pytest.raises(BridgeError, match="input 'df' must be a pandas DataFrame, got int"):
        check_frame("s", "df", 3)


def _upper(step_name: str, literals: dict[str, object]) -> dict[str, object]:
    if literals.get("word") == "bad":
        raise BridgeError(f"Step '{step_name}': word='bad' is refused")
    return {k: v.upper() for k, v in literals.items() if isinstance(v, str)}


def _shout(word: str, n: int = 1) -> str:
    return word * n


shout = ValidationStep(_shout, "shout", prepare=_upper)


@step
def count() -> int:
    return 2


def test_validation_step_rewrites_literals_when_the_pipeline_is_built() -> None:
    assert shout("hi") == "hi"  # outside a pipeline: the plain function

    @pipeline
    def p() -> None:
        shout("hi", n=count())

    (shout_step,) = [s for s in p.to_ir().steps if s.name == "shout"]
    inputs = {i.name: i for i in shout_step.inputs}
    assert (inputs["word"].kind, inputs["word"].value) == ("constant", "HI")
    assert inputs["n"].kind == "output"  # a step output is left alone

    @pipeline
    def refused() -> None:
        shout("bad")

    with pytest.raises(BridgeError, match="word='bad' is refused"):
        refused.to_ir()
