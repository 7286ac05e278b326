"""drift_gate, evidently_tests and evidently_report with real Evidently on iris (scikit-learn).

Pipelines run on the local runner in a fresh stack per test; the gate's effects (step
``stopped``, downstream ``skipped``, run ``stopped``) are read back from the metadata store.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import ev_pipelines as ep
import pytest
from integration_support import run_cli
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import load_run, run_pipeline
from zenml_bridge.validation import ValidationFailed, ValidationReport

from zenml_bridge_evidently.steps import drift_gate, evidently_report, evidently_tests
from zenml_bridge_evidently.validator import EvidentlyDataValidator


def test_drift_gate_passes_similar_data(make_settings: Any) -> None:
    run = run_pipeline(ep.monitored, {"shift": "none"}, settings=make_settings())
    assert run.status == "completed"
    drift = run.steps["drift_gate"].outputs["drift"].load()
    assert drift["drift_share"] <= 0.3 and drift["drifted_columns"] == []
    assert run.steps["retrain"].status == "completed"


def test_drift_gate_stops_on_shifted_data_naming_the_columns(make_settings: Any) -> None:
    run = run_pipeline(ep.monitored, {"shift": "drift"}, settings=make_settings())
    assert run.status == "stopped"
    gate_step = run.steps["drift_gate"]
    assert gate_step.status == "stopped"
    assert run.steps["retrain"].status == "skipped"
    assert "drift share 0.40 exceeds the threshold 0.30" in (gate_step.error or "")
    assert "'petal_width', 'sepal_length'" in (gate_step.error or "")
    # Both outputs of the stopped step are kept: the figures and the page.
    assert gate_step.outputs["drift"].load() == {
        "drift_share": 0.4,
        "drifted_columns": ["petal_width", "sepal_length"],
        "threshold": 0.3,
        "drift_detected": True,
    }
    report = gate_step.outputs["report"].load()
    assert isinstance(report, ValidationReport) and not report.passed
    page = gate_step.outputs["report"].visualizations()["report.html"].decode()
    assert "<title>Evidently data drift</title>" in page


def test_on_drift_fail_and_warn(make_settings: Any) -> None:
    reference, shifted = ep.halves()[0], ep.current("drift")
    with pytest.raises(ValidationFailed, match=re.escape("drifted columns: 'petal_width'")):
        drift_gate(reference, shifted, on_drift="fail")
    drift, report = drift_gate(reference, shifted, threshold=0.5, on_drift="fail")
    assert drift["drift_share"] == 0.4 and report.passed  # 0.4 is within 0.5

    warn = drift_gate.with_settings(evidently={"on_failure": "warn"})

    @ep.pipeline(name="warned")
    def warned() -> None:
        warn(ep.load_reference(), ep.load_current("drift"))

    settings = make_settings()
    run = load_run(run_pipeline(warned, settings=settings).run_id, settings)
    assert run.status == "completed"
    assert run.steps["drift_gate"].metadata["validation_failed"] is True


def test_evidently_tests_stop_on_nulls_and_pass_clean_data(make_settings: Any) -> None:
    settings = make_settings()
    clean = run_pipeline(ep.tested, {"shift": "none"}, settings=settings)
    assert clean.status == "completed"
    assert clean.steps["evidently_tests"].outputs["report"].load().summary["failed"] == []

    bad = run_pipeline(ep.tested, {"shift": "nulls"}, settings=settings)
    assert bad.status == "stopped"
    assert bad.steps["retrain"].status == "skipped"
    error = bad.steps["evidently_tests"].error or ""
    assert "1 of 1 Evidently tests failed" in error and "'petal_length'" in error


def test_report_is_cached_for_same_data_and_rerun_for_changed_data(make_settings: Any) -> None:
    settings = make_settings()
    first = run_pipeline(ep.reported, {"shift": "none"}, settings=settings)
    report = first.steps["evidently_report"].outputs["report"].load()
    assert report.kind == "evidently.report" and report.passed
    assert any("RowCount" in m["config"]["type"] for m in report.result["metrics"])
    assert (
        run_pipeline(ep.reported, {"shift": "none"}, settings=settings)
        .steps["evidently_report"]
        .status
        == "cached"
    )
    changed = run_pipeline(ep.reported, {"shift": "nulls"}, settings=settings)
    assert changed.steps["evidently_report"].status == "completed"


@pytest.mark.browser
def test_report_page_renders_in_headless_chromium(make_settings: Any, tmp_path: Path) -> None:
    from browser import open_page

    _, report = drift_gate(ep.halves()[0], ep.current("drift"), on_drift="warn")
    page_file = tmp_path / "drift.html"
    page_file.write_text(report.html, encoding="utf-8")
    page = open_page(page_file, screenshot_to=tmp_path / "drift.png", wait_for="text=Dataset Drift")
    assert page.title == "Evidently data drift"
    # Evidently's page draws with JavaScript: this text exists only once it has rendered.
    assert "Dataset Drift is detected. Dataset drift detection threshold is 0.3" in page.text
    assert "Drift is detected for 40.0% of columns (2 out of 5)." in page.text
    assert (tmp_path / "drift.png").stat().st_size > 10_000


def test_stack_component_sets_the_threshold(make_settings: Any) -> None:
    @ep.pipeline(name="lenient")
    def lenient() -> None:
        reference, batch = ep.load_reference(), ep.load_current("drift")
        drift, _ = drift_gate(reference, batch)
        ep.retrain(batch, after=drift)

    settings = make_settings(data_validator={"flavor": "evidently", "threshold": 0.5})
    assert run_pipeline(lenient, settings=settings).status == "completed"
    with pytest.raises(BridgeError, match=r"unknown option 'treshold'.*Did you mean 'threshold'"):
        EvidentlyDataValidator(treshold=0.5)


# -- bad input ----------------------------------------------------------------------------------


def test_unknown_preset_gets_did_you_mean() -> None:
    reference, batch = ep.halves()
    with pytest.raises(BridgeError) as caught:
        evidently_report(reference, batch, presets=["DataDrfitPreset"])
    assert str(caught.value).startswith(
        "Step 'evidently_report': unknown Evidently preset or metric 'DataDrfitPreset' in "
        "presets. Did you mean 'DataDriftPreset'?"
    )


BAD_INPUT = [
    (lambda r, c: drift_gate(r.to_dict(), c),
     "input 'reference' must be a pandas DataFrame, got dict"),
    (lambda r, c: drift_gate(r, c.iloc[0:0]),
     "input 'current' is an empty DataFrame (0 rows x 5 columns)"),
    (lambda r, c: drift_gate(r, c.drop(columns=["target"])),
     "the current data has no column(s) 'target'"),
    (lambda r, c: drift_gate(r, c, columns=["petal"]),
     "the reference data has no column(s) 'petal'"),
    (lambda r, c: drift_gate(r, c, threshold=3), "threshold=3.0 must be a share in [0, 1]"),
    (lambda r, c: evidently_report(r, c, column_mapping={"numerical_column": ["x"]}),
     "column_mapping has unknown key 'numerical_column'. Did you mean 'numerical_columns'?"),
    (lambda r, c: evidently_tests(r, c, tests=[{"column": "x", "lte": 0}]), "has no 'name'"),
    (lambda r, c: evidently_tests(r, c, tests=[]), "tests= needs a non-empty list"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "problem"), BAD_INPUT)
def test_bad_input_is_named(call: Any, problem: str) -> None:
    reference, batch = ep.halves()
    with pytest.raises(BridgeError, match=re.escape(problem)):
        call(reference, batch)


def test_unknown_preset_is_a_configuration_error_before_the_run(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        "from zenml_bridge import pipeline\n"
        "from ev_pipelines import load_current, load_reference\n"
        "from zenml_bridge_evidently.steps import evidently_report\n\n"
        "@pipeline\n"
        "def typo() -> None:\n"
        "    evidently_report(load_reference(), load_current(), presets=['DataSumaryPreset'])\n"
    )
    result = run_cli("run", f"{flow}:typo", cwd=tmp_path, path=[Path(ep.__file__).parent])
    assert result.returncode == 2, result.stderr
    assert "unknown Evidently preset or metric 'DataSumaryPreset'" in result.stderr
    assert "Did you mean 'DataSummaryPreset'?" in result.stderr
    assert "Traceback" not in result.stderr
