"""A tracking server that is down fails the run clearly, or with on_error: skip is noted.

Either way our own metadata (run, steps, artifacts) is recorded.
"""

from __future__ import annotations

import re
import time
from typing import Any

import mlflow_pipelines as mp
import pytest
from conftest import free_port
from mlflow import MlflowClient
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import run_pipeline
from zenml_bridge.runtime.records import load_run
from zenml_bridge.runtime.stack import open_stack


def only_run(settings: Any) -> Any:
    rows = open_stack(settings).metadata.list_runs()
    assert len(rows) == 1
    return load_run(rows[0]["run_id"], settings)


def test_server_down_fails_the_run_with_a_clear_message(make_settings: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the server is down
    settings = make_settings(url)
    started = time.perf_counter()
    with pytest.raises(BridgeError) as caught:
        run_pipeline(mp.training, {"rows": 10}, settings=settings)
    elapsed = time.perf_counter() - started
    message = str(caught.value)
    assert re.search(
        rf"MLflow tracking failed: could not start the MLflow run of pipeline 'training' run "
        rf"training-\S+ at {re.escape(url)} \(from experiment_tracker.tracking_uri in the "
        r"stack config\): connection refused \(is the server running\?\)\. Check that the MLflow "
        r"server is running .*, or set experiment_tracker.on_error: skip",
        message,
    ), message
    print(f"outage reported after {elapsed:.2f}s")
    run = only_run(settings)  # our record is there and says what happened
    assert run.status == "failed"
    assert run.steps == {}


def test_server_down_with_skip_runs_on_and_records_it(make_settings: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the server is down
    settings = make_settings(url, on_error="skip")
    run = run_pipeline(mp.training, {"rows": 10}, settings=settings)
    assert run.status == "completed"
    assert "connection refused" in run.links["tracking.skipped"]
    assert "mlflow.run_id" not in run.links
    stored = load_run(run.run_id, settings)
    assert stored.links["tracking.skipped"] == run.links["tracking.skipped"]
    assert stored.steps["train"].metrics["accuracy"] == 0.5
    assert (
        stored.steps["evaluate"].outputs["output"].load()
        == run.steps["evaluate"].outputs["output"].load()
    )


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_server_dies_in_the_middle_of_a_run(
    start_server: Any, make_settings: Any, on_error: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    monkeypatch.setenv("ZB_TEST_SERVER_PGID", str(server.process.pid))
    settings = make_settings(server.url, on_error=on_error)
    if on_error == "fail":
        with pytest.raises(BridgeError, match=r"MLflow tracking failed: could not record step "):
            run_pipeline(mp.outage, {"rows": 4}, settings=settings)
        run = only_run(settings)
        assert run.status == "failed"
        # the step that took the server down is failed for tracking, and says so; what it
        # produced is still recorded in our store
        stopped = run.steps["stop_tracking_server"]
        assert stopped.status == "failed"
        assert "MLflow tracking failed" in (stopped.error or "")
        assert stopped.outputs["output"].load() == 4
        assert "after_outage" not in run.steps
        assert run.links["mlflow.run_id"]  # the link made before the outage is kept
    else:
        run = run_pipeline(mp.outage, {"rows": 4}, settings=settings)
        assert run.status == "completed"
        run = load_run(run.run_id, settings)
        assert run.steps["after_outage"].outputs["output"].load() == 8
        assert run.steps["after_outage"].metrics == {"n": 4.0}
        assert "record step 'stop_tracking_server'" in run.links["tracking.skipped"]
    server.stop()


def test_tracking_resumes_when_the_server_is_back(start_server: Any, make_settings: Any) -> None:
    server = start_server()
    server.stop()
    settings = make_settings(server.url, on_error="skip")
    first = run_pipeline(mp.training, {"rows": 10}, settings=settings)
    assert "tracking.skipped" in first.links
    server.start()  # same port, same database; the same tracker object tries again
    second = run_pipeline(mp.training, {"rows": 11}, settings=settings)
    assert "tracking.skipped" not in second.links
    parent = MlflowClient(server.url).get_run(second.links["mlflow.run_id"])
    assert parent.data.tags["zenml_bridge.run_id"] == second.run_id
