"""One process per step, as on Airflow and Kubeflow: every process joins the same MLflow run."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow_pipelines as mp
from mlflow import MlflowClient
from mlflow.entities import ViewType
from zenml_bridge import ir
from zenml_bridge.config import Settings
from zenml_bridge.runtime.records import load_run

HERE = Path(__file__).parent


def parents(client: MlflowClient, experiment: str, run_id: str, view: int) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`zenml_bridge.run_id` = '{run_id}' and "
        "tags.`zenml_bridge.kind` = 'pipeline'",
        run_view_type=view,
    )


def children(client: MlflowClient, experiment: str, run_id: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`zenml_bridge.run_id` = '{run_id}' and "
        "tags.`zenml_bridge.kind` = 'step'",
    )


def test_racing_step_processes_end_with_one_parent(mlflow_server: Any) -> None:
    run_ids = [f"race-{os.getpid()}-{i}" for i in range(6)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    workers = [
        ctx.Process(target=mp.race_worker, args=(mlflow_server.url, run_ids, name, barrier, out))
        for name in ("a", "b")
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=300) for _ in range(2 * len(run_ids))]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert len(results) == 12
    client = MlflowClient(mlflow_server.url)
    raced = 0
    for run_id in run_ids:
        active = parents(client, "race", run_id, ViewType.ACTIVE_ONLY)
        assert len(active) == 1, run_id
        parent = active[0]
        raced += len(parents(client, "race", run_id, ViewType.DELETED_ONLY))
        steps = children(client, "race", run_id)
        assert sorted(c.data.tags["zenml_bridge.step"] for c in steps) == ["a", "b"]
        assert {c.data.tags["mlflow.parentRunId"] for c in steps} == {parent.info.run_id}
        assert parent.data.metrics == {"a.m": 1.0, "b.m": 1.0}
        assert parent.data.params == {"p": "1"}
    print(f"duplicate parents created and merged away: {raced} of {len(run_ids)} runs")


def test_entrypoint_processes_track_one_run(tmp_path: Path, mlflow_server: Any) -> None:
    project = tmp_path / "project"
    home = project / ".zenml_bridge"
    home.mkdir(parents=True)
    stack = {"experiment_tracker": {"flavor": "mlflow", "tracking_uri": mlflow_server.url}}
    (home / "config.yaml").write_text(
        json.dumps({"active_stack": "default", "stacks": {"default": stack}})
    )
    pipeline_ir = mp.fan.to_ir()
    ir_file = tmp_path / "fan.json"
    ir_file.write_text(ir.dumps(pipeline_ir))
    sha = ir.sha256(pipeline_ir)
    run_id = f"fan-{os.getpid()}"
    env = {
        **os.environ,
        "ZENML_BRIDGE_BACKEND": "airflow",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }

    def step(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "zenml_bridge.entrypoint",
                "run-step",
                "--ir",
                str(ir_file),
                "--ir-sha256",
                sha,
                "--step",
                name,
                "--run-id",
                run_id,
            ],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    roots = [step("left"), step("right")]  # independent steps start together
    for proc in roots:
        output = proc.communicate(timeout=300)[0].decode()
        assert proc.returncode == 0, output
    last = step("join")
    output = last.communicate(timeout=300)[0].decode()
    assert last.returncode == 0, output

    client = MlflowClient(mlflow_server.url)
    active = parents(client, "fan", run_id, ViewType.ACTIVE_ONLY)
    assert len(active) == 1
    parent = active[0]
    assert parent.info.status == "FINISHED"  # the last step process finished the run
    assert parent.data.tags["zenml_bridge.backend"] == "airflow"
    assert parent.data.params == {"n": "3"}
    steps = {c.data.tags["zenml_bridge.step"]: c for c in children(client, "fan", run_id)}
    assert set(steps) == {"left", "right", "join"}
    assert {c.data.tags["mlflow.parentRunId"] for c in steps.values()} == {parent.info.run_id}
    assert parent.data.metrics == {"left.left_metric": 3.0, "right.right_metric": 3.0}
    settings = Settings(
        metadata_url=f"sqlite:///{home / 'metadata.db'}",
        artifact_root=str(home / "artifacts"),
        home=home,
    )
    record = load_run(run_id, settings)
    assert record.status == "completed"
    assert record.links["mlflow.run_id"] == parent.info.run_id
    assert steps["join"].data.tags["zenml_bridge.output.output"] == (
        record.steps["join"].outputs["output"].uri
    )
