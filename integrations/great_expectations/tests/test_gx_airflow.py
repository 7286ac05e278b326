"""The gate on Airflow 3.3: `airflow dags test` of a compiled pipeline whose GX gate stops.

The task of the stopping step exits with code 99 (Airflow's skip_on_exit_code), so Airflow
marks it skipped and skips the tasks downstream; our run is ``stopped`` with the report kept.
One DAG run of three tasks on purpose (each task imports GX).
"""

from __future__ import annotations

from pathlib import Path

import gx_pipelines
import pytest
from zenml_bridge.runtime import load_run
from zenml_bridge.stores.metadata import MetadataStore

pytestmark = pytest.mark.airflow


def test_stopping_gate_skips_downstream_tasks_on_airflow(tmp_path: Path) -> None:
    pytest.importorskip("airflow", reason="Airflow is installed by tox -e great_expectations")
    from integration_support import dags_test

    states, settings = dags_test(
        Path(gx_pipelines.__file__), "literal_gate", {"fault": "out_of_range"}, tmp_path
    )
    assert states == {"load_batch": "success", "gx_validate": "skipped", "train": "skipped"}

    (row,) = MetadataStore(settings.metadata_url).list_runs(pipeline="literal_gate")
    run = load_run(row["run_id"], settings)
    assert run.status == "stopped"
    assert run.steps["gx_validate"].status == "stopped"
    assert "expect_column_values_to_be_between on column 'sepal_width'" in (
        run.steps["gx_validate"].error or ""
    )
    report = run.steps["gx_validate"].outputs["validation"].load()
    assert report.summary["failed_columns"] == ["sepal_width"]
