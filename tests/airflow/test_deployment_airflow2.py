"""Airflow 2.11: one run by a real `airflow scheduler` (LocalExecutor, PostgreSQL), triggered
with `airflow dags trigger -c`, with no venv on PATH and no ZENML_BRIDGE_* variables."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deployment import airflow2_scheduler, cli_json, wait_for_run_cli

from zenml_bridge.config import Settings
from zenml_bridge.runtime import load_run

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
FLOWS = Path(__file__).parent / "flows" / "deploy.py"
AIRFLOW_BIN = Path(sys.executable).parent / "airflow"


def _airflow_major() -> int:
    try:
        import airflow
    except ImportError:
        return 0
    return int(airflow.__version__.split(".")[0])


if _airflow_major() != 2:
    pytest.skip("Airflow 2 only (tox -e airflow2)", allow_module_level=True)


def test_scheduler_runs_the_dag_into_the_project(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    (project / "deploy_flows.py").write_bytes(FLOWS.read_bytes())
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}

    def cli(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "zenml_bridge", *args],
            cwd=project, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    started = time.monotonic()
    with airflow2_scheduler(tmp_path / "site", AIRFLOW_BIN, HOME=str(home)) as site:
        cli("init")
        cli("compile", "deploy_flows.py:diamond", "--target", "airflow", "--out", str(site.dags))
        conf = json.dumps({"rows": 6, "label": "two"})
        # The scheduler registers the DAG when it has parsed the folder: until then the
        # trigger is refused ("not found"), so try again.
        deadline = time.monotonic() + 180
        while True:
            triggered = site.airflow("dags", "trigger", "diamond", "-c", conf, "-r", "zb_manual_1")
            if triggered.returncode == 0:
                break
            site.check_alive()
            assert time.monotonic() < deadline, triggered.stdout[-3000:]
            time.sleep(2)
        state = wait_for_run_cli(site, "diamond", "zb_manual_1")
        tasks = cli_json(site, "tasks", "states-for-dag-run", "diamond", "zb_manual_1")
        assert state == "success", (tasks, site.log_tails())
        # No XCom either on 2.x (the task's status line would be pushed by default).
        print(f"Airflow 2 scheduler run: {time.monotonic() - started:.0f}s")

    store = project / ".zenml_bridge"
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", "zb_manual_1")
    digest = hashlib.sha256(b"diamond\nzb_manual_1").hexdigest()[:8]
    settings = Settings(
        metadata_url=f"sqlite:///{(store / 'metadata.db').resolve()}",
        artifact_root=str((store / "artifacts").resolve()),
        home=store,
    )
    run = load_run(f"airflow-{readable}-{digest}", settings)
    assert run.status == "completed"
    assert {s.status for s in run.steps.values()} == {"completed"}
    assert run.steps["join"].outputs["summary"].load() == {"even": 6, "odd": 9, "label": "two"}
    assert Path(run.steps["join"].outputs["python"].load()).parent == AIRFLOW_BIN.parent
