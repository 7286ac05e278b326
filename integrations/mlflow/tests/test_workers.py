"""MLflow tracking reaches the workers of Airflow and Kubeflow (issue 12).

The tracker is configured only in the compiling project's `.zenml_bridge/config.yaml`; the
workers run elsewhere (Airflow's task folder, kfp.local's subprocesses) with no project config
and no MLFLOW_TRACKING_URI. `zenml-bridge compile` publishes the stack's components beside the
IR and the generated DAG / YAML passes them to every step, so each step process joins the same
MLflow run on a real `mlflow server`, read back here. Runs in `tox -e mlflow-airflow`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from zenml_bridge.stores.metadata import MetadataStore

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
KFP_RUNNER = """
import sys
from kfp import components, local
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
components.load_component_from_file(sys.argv[1])()
"""


def project(root: Path, server_url: str) -> tuple[Path, dict[str, str]]:
    """A project whose stack tracks into the server; an environment without MLflow hints."""
    folder = root / "project"
    (folder / ".zenml_bridge").mkdir(parents=True)
    shutil.copy(HERE / "worker_flow.py", folder / "worker_flow.py")
    stack = {
        "metadata_url": f"sqlite:///{root / 'metadata.db'}",
        "artifact_root": str(root / "artifacts"),
        "components": {"experiment_tracker": {"flavor": "mlflow", "tracking_uri": server_url}},
    }
    config = {"version": 1, "active_stack": "default", "stacks": {"default": stack}}
    (folder / ".zenml_bridge" / "config.yaml").write_text(json.dumps(config))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_REGISTRY", "ZENML_BRIDGE_", "AIRFLOW"))
    }
    env["ZENML_BRIDGE_HOME"] = str(root / "no-project-home")
    env["ZENML_BRIDGE_CODE_CACHE"] = str(root / "code-cache")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return folder, env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{args[:5]}:\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}"
    return done


def check_tracked(server_url: str, root: Path, backend: str) -> None:
    """One parent run for our run, one child per step, metrics and the worker's param."""
    (row,) = MetadataStore(f"sqlite:///{root / 'metadata.db'}").list_runs()
    assert row["status"] == "completed" and row["backend"] == backend
    client = MlflowClient(server_url)
    experiment = client.get_experiment_by_name("tracked")
    assert experiment is not None, "no MLflow experiment: the workers did not track"
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`zenml_bridge.run_id` = '{row['run_id']}'",
    )
    parents = [r for r in runs if r.data.tags.get("zenml_bridge.kind") == "pipeline"]
    steps = {
        r.data.tags["zenml_bridge.step"]: r
        for r in runs
        if r.data.tags.get("zenml_bridge.kind") == "step"
    }
    assert len(parents) == 1 and set(steps) == {"numbers", "total"}
    parent = parents[0]
    assert parent.data.tags["zenml_bridge.backend"] == backend
    # Step metrics copied as <step>.<key>; log_run_metric("total", ...) under its own key.
    assert parent.data.metrics == {"numbers.rows": 4.0, "total.total": 6.0, "total": 6.0}
    assert steps["total"].data.params["worker_param"] == "from-the-worker"
    assert {r.data.tags["mlflow.parentRunId"] for r in steps.values()} == {parent.info.run_id}
    assert row["links"]["mlflow.run_id"] == parent.info.run_id


def test_airflow_dags_test_tracks_every_step(tmp_path: Path, mlflow_server: Any) -> None:
    folder, env = project(tmp_path, mlflow_server.url)
    dags = tmp_path / "dags"
    compiled = run(
        [sys.executable, "-m", "zenml_bridge", "compile", "worker_flow.py:tracked",
         "--target", "airflow", "--out", str(dags)],
        env, folder,
    )  # fmt: skip
    assert "stack components" in compiled.stdout
    airflow_env = {
        **env,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONWARNINGS": "ignore",
    }
    elsewhere = tmp_path / "elsewhere"  # Airflow's own folder: no project config here
    elsewhere.mkdir()
    run([sys.executable, "-m", "airflow", "db", "migrate"], airflow_env, elsewhere)
    run([sys.executable, "-m", "airflow", "dags", "test", "tracked"], airflow_env, elsewhere)
    check_tracked(mlflow_server.url, tmp_path, "airflow")


def test_kfp_local_tracks_every_step(tmp_path: Path, mlflow_server: Any) -> None:
    folder, env = project(tmp_path, mlflow_server.url)
    out = tmp_path / "tracked.yaml"
    run(
        [sys.executable, "-m", "zenml_bridge", "compile", "worker_flow.py:tracked",
         "--target", "kubeflow", "--executor", "lightweight", "--out", str(out)],
        env, folder,
    )  # fmt: skip
    assert "--components" in out.read_text()
    # KFP workers see the stores through their environment, as pods would.
    worker_env = {
        **env,
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'metadata.db'}",
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    runner = tmp_path / "run_kfp.py"
    runner.write_text(KFP_RUNNER)
    run([sys.executable, str(runner), str(out), str(tmp_path / "kfp-root")], worker_env, elsewhere)
    check_tracked(mlflow_server.url, tmp_path, "kubeflow")
