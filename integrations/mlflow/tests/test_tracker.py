"""Every pipeline run becomes an MLflow run: read back through MlflowClient."""

from __future__ import annotations

from typing import Any

import mlflow_pipelines as mp
import pytest
from mlflow import MlflowClient
from zenml_bridge.runtime import run_pipeline
from zenml_bridge.runtime.records import load_run


def children_of(client: MlflowClient, parent: Any) -> dict[str, Any]:
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    return {r.data.tags["zenml_bridge.step"]: r for r in runs}


def check_tracked_run(client: MlflowClient, run: Any, *, rows: int, C: float) -> Any:
    parent = client.get_run(run.links["mlflow.run_id"])
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.name == "training"
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["zenml_bridge.run_id"] == run.run_id
    assert tags["zenml_bridge.kind"] == "pipeline"
    assert len(tags["zenml_bridge.ir_sha256"]) == 64
    assert tags["zenml_bridge.ir_sha256"] == run.ir_sha256
    if run.git_sha:
        assert tags["zenml_bridge.git_sha"] == run.git_sha
        assert tags["mlflow.source.git.commit"] == run.git_sha
    assert parent.data.params == {"rows": str(rows), "C": str(C)}
    # step metrics copied to the parent, step-prefixed: one row per pipeline run
    assert parent.data.metrics["train.accuracy"] == 0.5
    assert "evaluate.test_score" in parent.data.metrics
    model_uri = run.steps["train"].outputs["model"].uri
    assert tags["zenml_bridge.output.train.model"] == model_uri

    children = children_of(client, parent)
    assert set(children) == {"load", "train", "evaluate"}
    train = children["train"]
    assert train.info.status == "FINISHED"
    assert train.data.params == {"C": str(C)}
    assert children["load"].data.params == {"rows": str(rows)}
    history = client.get_metric_history(train.info.run_id, "accuracy")
    assert [m.value for m in history] == [0.5]  # the step context keeps the last value
    assert train.data.tags["zenml_bridge.output.model"] == model_uri
    assert (
        train.data.tags["zenml_bridge.output_sha256.model"]
        == run.steps["train"].outputs["model"].sha256
    )
    assert train.data.tags["zenml_bridge.metadata.rows"] == str(rows)
    assert train.data.tags["zenml_bridge.metadata.note"] == "trained"
    return parent


def test_run_is_tracked_in_sqlite_store(sqlite_uri: str, make_settings: Any) -> None:
    settings = make_settings(sqlite_uri)
    run = run_pipeline(mp.training, {"rows": 40, "C": 0.5}, settings=settings)
    assert run.status == "completed"
    assert run.links["mlflow.tracking_uri"] == sqlite_uri
    client = MlflowClient(sqlite_uri)
    check_tracked_run(client, run, rows=40, C=0.5)
    # the link is stored on our run record, not only returned
    stored = load_run(run.run_id, settings)
    assert stored.links["mlflow.run_id"] == run.links["mlflow.run_id"]


def test_run_is_tracked_on_mlflow_server(mlflow_server: Any, make_settings: Any) -> None:
    run = run_pipeline(mp.training, {"rows": 30}, settings=make_settings(mlflow_server.url))
    client = MlflowClient(mlflow_server.url)
    parent = check_tracked_run(client, run, rows=30, C=1.0)
    assert run.links["mlflow.run_url"] == (
        f"{mlflow_server.url}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
    )


def test_cached_steps_and_failed_runs_show_their_status(
    sqlite_uri: str, make_settings: Any
) -> None:
    settings = make_settings(sqlite_uri)
    client = MlflowClient(sqlite_uri)
    run_pipeline(mp.training, {"rows": 20}, settings=settings)
    again = run_pipeline(mp.training, {"rows": 20}, settings=settings)
    assert {s.status for s in again.steps.values()} == {"cached"}
    parent = client.get_run(again.links["mlflow.run_id"])
    children = children_of(client, parent)
    assert {name: c.data.tags["zenml_bridge.cached"] for name, c in children.items()} == {
        "load": "true",
        "train": "true",
        "evaluate": "true",
    }
    assert all(c.info.status == "FINISHED" for c in children.values())
    # the cached train step still points at the artifact it reused
    assert children["train"].data.tags["zenml_bridge.output.model"] == (
        again.steps["train"].outputs["model"].uri
    )

    failed = run_pipeline(mp.failing, {}, settings=settings, raise_on_failure=False)
    assert failed.status == "failed"
    parent = client.get_run(failed.links["mlflow.run_id"])
    assert parent.info.status == "FAILED"
    assert parent.data.tags["zenml_bridge.status"] == "failed"
    children = children_of(client, parent)
    assert children["fail_here"].info.status == "FAILED"
    assert children["load"].info.status == "FINISHED"


def test_default_tracking_uri_is_sqlite_in_the_project(tmp_path: Any, make_settings: Any) -> None:
    settings = make_settings(None)  # no tracking_uri: the default next to metadata.db
    run = run_pipeline(mp.training, {"rows": 12}, settings=settings)
    expected = f"sqlite:///{(tmp_path / '.zenml_bridge' / 'mlflow.db').resolve()}"
    assert run.links["mlflow.tracking_uri"] == expected
    parent = MlflowClient(expected).get_run(run.links["mlflow.run_id"])
    assert parent.data.tags["zenml_bridge.run_id"] == run.run_id
    # artifacts go beside the database, not into ./mlruns of the working directory
    experiment = MlflowClient(expected).get_experiment(parent.info.experiment_id)
    assert experiment.artifact_location.startswith(
        (tmp_path / ".zenml_bridge" / "mlflow-artifacts").as_uri()
    )


@pytest.mark.parametrize("parallel", [2])
def test_parallel_steps_share_one_parent(
    sqlite_uri: str, make_settings: Any, parallel: int
) -> None:
    run = run_pipeline(
        mp.autologged, {"rows": 30}, settings=make_settings(sqlite_uri), parallel=parallel
    )
    client = MlflowClient(sqlite_uri)
    parent = client.get_run(run.links["mlflow.run_id"])
    children = children_of(client, parent)
    assert set(children) == {"load", "train_autologged", "train"}
    # autolog is on only where the step asked for it
    autologged = children["train_autologged"]
    assert autologged.data.params.get("C") == "0.5"
    assert autologged.data.params.get("max_iter") == "150"
    assert any(k.startswith("training_") for k in autologged.data.metrics)
    assert "max_iter" not in children["train"].data.params
    assert not any(k.startswith("training_") for k in children["train"].data.metrics)


def test_run_values_go_onto_the_parent_and_steps_find_their_run(
    sqlite_uri: str, make_settings: Any
) -> None:
    import worker_flow

    run = run_pipeline(worker_flow.tracked, {"rows": 4}, settings=make_settings(sqlite_uri))
    assert run.metrics == {"total": 6.0}
    client = MlflowClient(sqlite_uri)
    parent = client.get_run(run.links["mlflow.run_id"])
    assert parent.data.metrics == {"numbers.rows": 4.0, "total.total": 6.0, "total": 6.0}
    (child,) = client.search_runs(
        [parent.info.experiment_id],
        filter_string="tags.`zenml_bridge.step` = 'total'",
    )
    assert child.data.params["worker_param"] == "from-the-worker"  # via active_step_run()
