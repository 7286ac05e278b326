"""gx_validate and gx_profile with real Great Expectations on iris (scikit-learn), faults made here.

Pipelines run on the local runner in a fresh stack per test; the gate's effects (step
``stopped``, downstream ``skipped``, run ``stopped``) are read back from the metadata store.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gx_pipelines as gp
import pytest
from integration_support import run_cli
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import load_run, run_pipeline
from zenml_bridge.validation import ValidationFailed, ValidationReport

from zenml_bridge_great_expectations.steps import gx_profile, gx_validate


def test_profiled_suite_passes_good_data_and_the_run_completes(make_settings: Any) -> None:
    run = run_pipeline(gp.gated, {"fault": "none"}, settings=make_settings())
    assert run.status == "completed"
    assert {s.status for s in run.steps.values()} <= {"completed", "cached"}
    report = run.steps["gx_validate"].outputs["validation"].load()
    assert isinstance(report, ValidationReport) and report.passed
    assert report.summary["failed"] == []
    assert report.result["statistics"]["unsuccessful_expectations"] == 0
    suite = run.steps["gx_profile"].outputs["suite"].load()
    kinds = {e["type"] for e in suite.to_json_dict()["expectations"]}
    assert {"expect_column_values_to_be_between", "expect_column_values_to_be_in_set"} <= kinds


@pytest.mark.parametrize(
    ("fault", "expectation", "column"),
    [
        ("nulls", "expect_column_values_to_not_be_null", "petal_length"),
        ("out_of_range", "expect_column_values_to_be_between", "sepal_width"),
    ],
)
def test_gate_stops_on_bad_data_naming_expectation_and_column(
    make_settings: Any, fault: str, expectation: str, column: str
) -> None:
    run = run_pipeline(gp.gated, {"fault": fault}, settings=make_settings())
    assert run.status == "stopped"
    gate_step = run.steps["gx_validate"]
    assert gate_step.status == "stopped"
    assert run.steps["train"].status == "skipped"
    assert f"{expectation} on column '{column}'" in (gate_step.error or "")
    # The report that stopped the run is kept, with its page as the visualization.
    artifact = gate_step.outputs["validation"]
    report = artifact.load()
    assert not report.passed
    assert column in report.summary["failed_columns"]
    page = artifact.visualizations()["report.html"].decode()
    assert "<title>iris validation: Great Expectations</title>" in page
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", page)


def test_on_failure_fail_fails_the_step_and_warn_goes_on(make_settings: Any) -> None:
    with pytest.raises(ValidationFailed, match="expect_column_values_to_not_be_null on column"):
        gx_validate(gp.batch("nulls"), suite=gp.SUITE, on_failure="fail")

    settings = make_settings()
    run = load_run(run_pipeline(gp.warned, {"fault": "nulls"}, settings=settings).run_id, settings)
    assert run.status == "completed"
    assert run.steps["train"].status == "completed"
    metadata = run.steps["gx_validate"].metadata
    assert metadata["validation_failed"] is True
    assert "petal_length" in metadata["validation_reason"]


def test_same_data_and_suite_hit_the_cache_changed_data_or_suite_revalidates(
    make_settings: Any, tmp_path: Path
) -> None:
    settings = make_settings()
    suite_file = tmp_path / "suite.json"
    suite_file.write_text(json.dumps(gp.SUITE))

    def by_file(fault: str) -> Any:
        @gp.pipeline(name="by_file")
        def by_file_pipeline(fault: str = "none") -> None:
            gx_validate(gp.load_batch(fault), suite=str(suite_file))

        return run_pipeline(by_file_pipeline, {"fault": fault}, settings=settings)

    first = by_file("none")
    assert first.steps["gx_validate"].status == "completed"
    assert by_file("none").steps["gx_validate"].status == "cached"
    # Other data: the input's content hash changes, so GX runs again (and the gate stops).
    changed = by_file("out_of_range")
    assert changed.steps["gx_validate"].status == "stopped"
    # The same file with other content: the suite is read at build time, so this re-validates.
    edited = dict(gp.SUITE, expectations=gp.SUITE["expectations"][:1])
    suite_file.write_text(json.dumps(edited))
    again = by_file("none")
    assert again.steps["gx_validate"].status == "completed"
    assert again.steps["gx_validate"].cache_key != first.steps["gx_validate"].cache_key


def test_suite_as_gx_object_dict_or_file_gives_the_same_verdict(tmp_path: Path) -> None:
    data = gp.batch("out_of_range")
    suite = gx_profile.func(gp.reference(), name="iris")  # the plain function, outside a run
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite.to_json_dict()))
    verdicts = []
    for given in (suite, suite.to_json_dict(), str(path), path):
        report = gx_validate(data, suite=given, on_failure="warn")
        verdicts.append((report.passed, report.summary["failed_columns"]))
    assert verdicts == [(False, ["sepal_width"])] * 4


def test_profiler_suite_keeps_types_nulls_ranges_and_sets() -> None:
    ref = gp.reference()
    ref.loc[:9, "sepal_length"] = float("nan")  # 10 of 150 missing: mostly=0.933333
    suite = gx_profile(ref, name="ref", range_margin=0.1)
    by = {
        (e["type"], e["kwargs"].get("column")): e["kwargs"]
        for e in suite.to_json_dict()["expectations"]
    }
    assert by[("expect_column_values_to_not_be_null", "sepal_length")]["mostly"] == pytest.approx(
        140 / 150, abs=1e-6
    )
    between = by[("expect_column_values_to_be_between", "petal_width")]
    width = 2.5 - 0.1
    assert between["min_value"] == pytest.approx(0.1 - 0.1 * width)
    assert between["max_value"] == pytest.approx(2.5 + 0.1 * width)
    assert by[("expect_column_values_to_be_in_set", "target")]["value_set"] == [0, 1, 2]
    assert ("expect_column_values_to_be_in_set", "sepal_length") not in by  # floats: no set
    assert gx_validate(ref, suite=suite).passed


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        ("{not json", "is not JSON"),
        ("[1, 2]", "holds a JSON list, not a suite"),
        ('{"name": "x"}', "is not an expectation suite: it needs an 'expectations' list"),
        ('{"name": "x", "expectations": []}', "has no expectations"),
    ],
)
def test_suite_file_missing_or_not_a_suite(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "suite.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BridgeError, match=r"Step 'gx_validate': .*" + re.escape(problem)):
        gx_validate(gp.batch(), suite=str(path))


def test_unknown_expectation_type_gets_did_you_mean() -> None:
    typo = {"type": "expect_column_values_to_not_be_nul", "kwargs": {"column": "petal_length"}}
    suite = {"name": "typo", "expectations": [typo]}
    with pytest.raises(BridgeError) as caught:
        gx_validate(gp.batch(), suite=suite)
    message = str(caught.value)
    assert "Step 'gx_validate': suite 'typo' is not a valid expectation suite" in message
    assert "Did you mean 'expect_column_values_to_not_be_null'?" in message


def test_suite_column_missing_from_data_is_named() -> None:
    suite = gx_profile(gp.reference(), name="iris")
    with pytest.raises(BridgeError) as caught:
        gx_validate(gp.batch("drop_column"), suite=suite)
    message = str(caught.value)
    assert "Step 'gx_validate': suite 'iris' uses column(s) the data does not have" in message
    assert "'petal_width'" in message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([{"a": 1}], "input 'df' must be a pandas DataFrame, got list"),
        (gp.pd.DataFrame(), "input 'df' is an empty DataFrame (0 rows x 0 columns)"),
        (gp.pd.DataFrame({"a": []}), "input 'df' is an empty DataFrame (0 rows x 1 columns)"),
    ],
)
def test_empty_or_non_dataframe_input(value: Any, problem: str) -> None:
    for call in (lambda: gx_validate(value, suite=gp.SUITE), lambda: gx_profile(value)):
        with pytest.raises(BridgeError, match=re.escape(problem)):
            call()


def test_bad_on_failure_is_refused_with_did_you_mean() -> None:
    with pytest.raises(BridgeError, match=re.escape("on_failure='stopp' is not one of")):
        gx_validate(gp.batch(), suite=gp.SUITE, on_failure="stopp")

    @gp.pipeline(name="typo")
    def typo() -> None:
        gx_validate(gp.load_batch(), suite=gp.SUITE, on_failure="stopp")

    # Found when the pipeline is built, before anything runs.
    with pytest.raises(BridgeError, match=re.escape("Did you mean 'stop'?")):
        typo.to_ir()


def test_missing_suite_file_is_a_configuration_error_before_the_run(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        "from zenml_bridge import pipeline\n"
        "from gx_pipelines import load_batch\n"
        "from zenml_bridge_great_expectations.steps import gx_validate\n\n"
        "@pipeline\n"
        "def checked() -> None:\n"
        "    gx_validate(load_batch(), suite='suites/nope.json')\n"
    )
    result = run_cli("run", f"{flow}:checked", cwd=tmp_path, path=[Path(gp.__file__).parent])
    assert result.returncode == 2, result.stderr
    assert "Step 'gx_validate': suite file 'suites/nope.json' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "artifacts").exists() or not any(
        (tmp_path / "home" / "artifacts").iterdir()
    )
