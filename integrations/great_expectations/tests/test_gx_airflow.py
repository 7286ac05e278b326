"""The gate on Airflow 3.3: `airflow dags test` of a compiled pipeline whose GX gate stops.

The task of the stopping step exits with code 99 (Airflow's skip_on_exit_code), so Airflow
marks it skipped and skips the tasks downstream; our run is ``stopped`` with the report kept.
One DAG run (10-40 s) on purpose.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import gx_pipelines
import pytest
from zenml_bridge.config import Settings
from zenml_bridge.runtime import load_run
from zenml_bridge.stores.metadata import MetadataStore

pytestmark = pytest.mark.airflow


def test_stopping_gate_skips_downstream_tasks_on_airflow(tmp_path: Path) -> None:
    pytest.importorskip("airflow", reason="needs Airflow in this environment (tox -e great_expectations)")
    dags, home = tmp_path / "dags", tmp_path / "airflow"
    settings = Settings(
        metadata_url=f"sqlite:///{tmp_path / 'metadata.db'}",
        artifact_root=str(tmp_path / "artifacts"),
        home=tmp_path,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONWARNINGS="ignore",
        ZENML_BRIDGE_METADATA_URL=settings.metadata_url,
        ZENML_BRIDGE_ARTIFACT_ROOT=settings.artifact_root,
        ZENML_BRIDGE_CODE_CACHE=str(tmp_path / "code-cache"),
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        return done

    flow = Path(gx_pipelines.__file__)
    run(sys.executable, "-m", "zenml_bridge", "compile", f"{flow}:literal_gate",
        "--target", "airflow", "--out", str(dags))  # fmt: skip
    run(sys.executable, "-m", "airflow", "db", "migrate")
    run(sys.executable, "-m", "airflow", "dags", "test", "literal_gate", "-c",
        json.dumps({"fault": "out_of_range"}))  # fmt: skip

    with sqlite3.connect(home / "airflow.db") as db:
        states = dict(
            db.execute("select task_id, state from task_instance where dag_id = 'literal_gate'")
        )
    assert states["gx_validate"] == "skipped", states
    assert states["train"] == "skipped", states
    assert states["load_batch"] == "success", states

    (row,) = MetadataStore(settings.metadata_url).list_runs(pipeline="literal_gate")
    stored = load_run(row["run_id"], settings)
    assert stored.status == "stopped"
    assert stored.steps["gx_validate"].status == "stopped"
    assert "expect_column_values_to_be_between on column 'sepal_width'" in (
        stored.steps["gx_validate"].error or ""
    )
    assert "train" not in stored.steps or stored.steps["train"].status == "skipped"
    report = stored.steps["gx_validate"].outputs["validation"].load()
    assert report.summary["failed_columns"] == ["sepal_width"]
