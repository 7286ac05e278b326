"""The report a user opens: `zenml-bridge artifacts show ID --out page.html`, rendered by Chromium.

Also the stack's ``data_validator`` component (flavor ``great_expectations``): its data-docs
folder gets the same page, its defaults apply, and step settings override them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import gx_pipelines as gp
import pytest
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import load_run, run_pipeline

from zenml_bridge_great_expectations.steps import gx_validate
from zenml_bridge_great_expectations.validator import GreatExpectationsDataValidator


@pytest.mark.browser
def test_stored_report_opens_in_headless_chromium(make_settings: Any, tmp_path: Path) -> None:
    from browser import open_page

    settings = make_settings()
    run = run_pipeline(gp.gated, {"fault": "nulls"}, settings=settings)
    artifact = run.steps["gx_validate"].outputs["validation"]
    out = tmp_path / "report.html"
    env = dict(
        os.environ,
        ZENML_BRIDGE_METADATA_URL=settings.metadata_url,
        ZENML_BRIDGE_ARTIFACT_ROOT=settings.artifact_root,
    )
    shown = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "artifacts", "show", artifact.artifact_id,
         "--out", str(out)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    page = open_page(out, screenshot_to=tmp_path / "gx-report.png")
    assert page.title == "iris validation: Great Expectations"
    # GX's overview section, and the failed expectation in the column's section.
    assert re.search(r"Unsuccessful Expectations\s+1", page.text)
    assert "petal_length" in page.text and "values must never be null" in page.text
    assert (tmp_path / "gx-report.png").stat().st_size > 10_000


def test_data_validator_component_writes_data_docs_and_sets_defaults(
    make_settings: Any, tmp_path: Path
) -> None:
    docs = tmp_path / "data-docs"
    settings = make_settings(
        data_validator={"flavor": "great_expectations", "data_docs_dir": str(docs),
                        "on_failure": "warn"},
    )  # fmt: skip
    run = load_run(run_pipeline(gp.gated, {"fault": "nulls"}, settings=settings).run_id, settings)
    # The stack says warn: the run goes on, and the failure is in the step's metadata.
    assert run.status == "completed"
    assert run.steps["gx_validate"].metadata["validation_failed"] is True
    page = docs / "gated" / run.run_id / "gx_validate.html"
    assert "<title>iris validation: Great Expectations</title>" in page.read_text()


def test_step_settings_override_the_stack(make_settings: Any) -> None:
    strict = gx_validate.with_settings(great_expectations={"on_failure": "stop"})

    @gp.pipeline(name="strict")
    def strict_pipeline(fault: str = "nulls") -> None:
        strict(gp.load_batch(fault), suite=gp.SUITE)

    settings = make_settings(data_validator={"flavor": "great_expectations", "on_failure": "warn"})
    run = run_pipeline(strict_pipeline, {"fault": "nulls"}, settings=settings)
    assert run.status == "stopped"


def test_bad_component_and_settings_blocks_are_named(make_settings: Any) -> None:
    with pytest.raises(BridgeError) as caught:
        GreatExpectationsDataValidator(data_doc_dir="/x", on_failure="explode")
    message = str(caught.value)
    assert "unknown option 'data_doc_dir'" in message and "Did you mean 'data_docs_dir'?" in message
    assert "on_failure='explode' is not one of stop, fail, warn" in message

    typo = gx_validate.with_settings(great_expectations={"on_failur": "warn"})

    @gp.pipeline(name="typo")
    def typo_pipeline() -> None:
        typo(gp.load_batch(), suite=gp.SUITE)

    with pytest.raises(BridgeError, match=r"on_failur.*on_failure"):
        run_pipeline(typo_pipeline, settings=make_settings())
