"""The drift gate on Airflow 3.3: `airflow dags test` of a pipeline whose drift gate stops.

The stopping task exits with code 99 (Airflow's skip_on_exit_code): Airflow marks it skipped and
skips the tasks downstream; our run is ``stopped`` with both outputs kept. One DAG run.
"""

from __future__ import annotations

from pathlib import Path

import ev_pipelines
import pytest
from zenml_bridge.runtime import load_run
from zenml_bridge.stores.metadata import MetadataStore

pytestmark = pytest.mark.airflow


def test_drift_gate_skips_downstream_tasks_on_airflow(tmp_path: Path) -> None:
    pytest.importorskip("airflow", reason="Airflow is installed by tox -e evidently")
    from integration_support import dags_test

    states, settings = dags_test(
        Path(ev_pipelines.__file__), "airflow_gate", {"shift": "drift"}, tmp_path
    )
    assert states == {"load_both": "success", "drift_gate": "skipped", "retrain": "skipped"}

    (row,) = MetadataStore(settings.metadata_url).list_runs(pipeline="airflow_gate")
    run = load_run(row["run_id"], settings)
    assert run.status == "stopped"
    assert "drifted columns: 'petal_width', 'sepal_length'" in (run.steps["drift_gate"].error or "")
    assert run.steps["drift_gate"].outputs["drift"].load()["drift_share"] == 0.4
