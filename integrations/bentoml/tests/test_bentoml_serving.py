"""BentoML integration with the real thing: a Bento built into a BentoML store, served by
``bentoml serve`` on 127.0.0.1, real prediction requests compared with in-process predictions,
the deployment's records, stop and logs, bad input, and a StopPipeline gate."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from process_table import group_processes, live_pids
from zenml_bridge.cli.main import main
from zenml_bridge.components import component_class
from zenml_bridge.config import RunConfig
from zenml_bridge.deployers import Deployment, DeploymentGoneError
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import run_pipeline
from zenml_bridge.runtime.records import load_run

from zenml_bridge_bentoml.deployer import BentoMLModelDeployer


def post(url: str, payload: Any) -> Any:
    request = urllib.request.Request(
        url + "/predict",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def config(env: dict[str, str], **options: Any) -> RunConfig:
    block = {"flavor": "bentoml", "home": env["BENTOML_TEST_HOME"], "timeout": 180, **options}
    return RunConfig(components={"model_deployer": block})


@pytest.fixture(scope="module")
def served(project: dict[str, str]) -> dict[str, Any]:
    """One pipeline run that trains, gates, builds and deploys (shared by the tests below)."""
    import bento_pipes

    run = run_pipeline(bento_pipes.serve_iris, {"name": "iris"}, config=config(project))
    deployer = BentoMLModelDeployer(home=project["BENTOML_TEST_HOME"])
    (deployment,) = deployer.list()
    return {"run": run, "deployment": deployment, "deployer": deployer}


def test_flavor_is_registered_and_local_only() -> None:
    cls = component_class("model_deployer", "bentoml")
    assert cls is BentoMLModelDeployer and cls.local_only and cls.kind == "model_deployer"
    with pytest.raises(BridgeError, match=re.escape("has no option 'hme'. Did you mean 'home'?")):
        BentoMLModelDeployer(hme="/tmp")


def test_served_predictions_equal_in_process_predictions(served: dict[str, Any]) -> None:
    run, deployment = served["run"], served["deployment"]
    model = run.steps["train"].outputs["model"].load()
    frame = run.steps["load"].outputs["output"].load().drop(columns="target")
    rows = frame.iloc[::10]
    expected = model.predict(rows).tolist()
    url = run.steps["bentoml_deploy"].outputs["url"].load()
    assert url == deployment.url and url.startswith("http://127.0.0.1:")
    assert post(url, {"data": rows.values.tolist()}) == expected  # list of rows
    assert post(url, {"data": rows.to_dict(orient="records")}) == expected  # records
    split = rows.to_dict(orient="split")
    assert post(url, {"data": {"columns": split["columns"], "data": split["data"]}}) == expected
    assert post(url, {"data": rows.to_dict(orient="list")}) == expected  # column -> values
    # Bad request data: a client error from the service, the server keeps serving.
    with pytest.raises(urllib.error.HTTPError) as caught:
        post(url, {"data": [[1.0, 2.0]]})
    assert caught.value.code == 400
    assert post(url, {"data": rows.values.tolist()[:1]}) == expected[:1]


def test_deployment_records_run_model_artifact_and_bento(served: dict[str, Any]) -> None:
    run, deployment = served["run"], served["deployment"]
    assert deployment.flavor == "bentoml" and deployment.name == "iris"
    assert deployment.status == "running"
    assert deployment.run_id == run.run_id
    assert deployment.artifact_id == run.steps["train"].outputs["model"].artifact_id
    tag = run.steps["bento_build"].outputs["bento"].load()
    assert re.fullmatch(r"iris:[a-z0-9]+", tag)
    assert deployment.config["bento"] == tag
    recorded = load_run(run.run_id)  # with what the steps logged
    assert recorded.steps["bento_build"].metadata["bento_tag"] == tag
    assert recorded.steps["bentoml_deploy"].metadata["deployment_id"] == deployment.id
    assert group_processes(deployment.handle["pgid"])  # the server is running
    # BentoML's worker runs in its own session: recorded with the server, stopped with it.
    assert len(deployment.handle["tree"]) >= 2
    assert set(live_pids({int(p) for p in deployment.handle["tree"]})) == {
        int(p) for p in deployment.handle["tree"]
    }


def test_deployments_cli_lists_and_reads_logs(
    served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    deployment: Deployment = served["deployment"]
    assert main(["deployments", "list"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(deployment.id))
    for field in ("bentoml", "iris", "running", deployment.url, deployment.run_id):
        assert str(field) in line
    assert str(deployment.artifact_id) in line
    assert main(["deployments", "logs", deployment.id, "-n", "200"]) == 0
    assert "/predict" in capsys.readouterr().out


def test_port_in_use_and_never_ready_leave_nothing_running(served: dict[str, Any]) -> None:
    deployer: BentoMLModelDeployer = served["deployer"]
    tag = served["deployment"].config["bento"]
    before = {d.id for d in deployer.list()}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BridgeError, match=rf"Port {port} on 127\.0\.0\.1 is in use"):
            deployer.deploy(tag, "iris-busy", {"port": port})
    # A server that is not ready in time: stopped, and the error carries its log tail.
    with pytest.raises(BridgeError) as caught:
        deployer.deploy(tag, "iris-slow", {"timeout": 0.5})
    message = str(caught.value)
    assert "bentoml server for 'iris-slow' did not become healthy within 0.5 s" in message
    assert "Its log (" in message
    assert {d.id for d in deployer.list()} == before  # nothing half-recorded


def test_crashed_server_leaves_no_worker_behind(served: dict[str, Any]) -> None:
    """SIGKILL of ``bentoml serve`` itself (a crash): its worker, in its own session, is
    recorded with the deployment and ended by the stop (or had already ended)."""
    deployer: BentoMLModelDeployer = served["deployer"]
    deployment = deployer.deploy(served["deployment"].config["bento"], "iris-crash")
    tree = {int(p) for p in deployment.handle["tree"]}
    try:
        os.kill(deployment.handle["pgid"], signal.SIGKILL)
        try:
            assert deployer.stop(deployment.id).status == "stopped"
        except DeploymentGoneError:  # the worker noticed and exited by itself
            pass
        assert live_pids(tree) == []
    finally:
        for pid in live_pids(tree):
            os.kill(pid, signal.SIGKILL)


def test_unknown_bento_is_a_clear_error(served: dict[str, Any]) -> None:
    with pytest.raises(BridgeError, match=r"There is no Bento 'nope:v1' in the BentoML store"):
        served["deployer"].deploy("nope:v1", "nope")


def test_model_the_default_service_cannot_serve(project: dict[str, str]) -> None:
    import bento_pipes

    with pytest.raises(BridgeError) as caught:
        run_pipeline(bento_pipes.serve_dict, config=config(project))
    message = str(caught.value)
    assert "the default BentoML service serves scikit-learn estimators" in message
    assert "this model is a builtins.dict" in message
    assert "service='path/to/service.py:ClassName'" in message


USER_SERVICE = """
import bentoml


@bentoml.service(workers=1)
class Scaler:
    bento_model = bentoml.models.BentoModel("scaler:latest")

    def __init__(self) -> None:
        self.weights = bentoml.picklable_model.load_model(self.bento_model)

    @bentoml.api
    def predict(self, data: list) -> list:
        return [x * self.weights["factor"] for x in data]
"""


def test_users_service_serves_a_model_the_default_cannot(
    project: dict[str, str], tmp_path: Path
) -> None:
    import bento_pipes

    service = tmp_path / "scaler_service.py"
    service.write_text(USER_SERVICE)
    parameters = {"service": f"{service}:Scaler", "factor": 2.5}
    run = run_pipeline(bento_pipes.serve_custom, parameters, config=config(project))
    url = run.steps["bentoml_deploy"].outputs["url"].load()
    assert post(url, {"data": [1, 2, 4]}) == [2.5, 5.0, 10.0]
    deployer = BentoMLModelDeployer(home=project["BENTOML_TEST_HOME"])
    (deployment,) = [d for d in deployer.list() if d.url == url]
    assert deployment.artifact_id == run.steps["scaler"].outputs["output"].artifact_id
    stopped = deployer.stop(deployment.id)
    assert stopped.status == "stopped"
    assert live_pids({int(p) for p in deployment.handle["tree"]}) == []


def test_service_argument_errors(project: dict[str, str], tmp_path: Path) -> None:
    import bento_pipes

    for service, problem in (
        ("scaler_service.py", "give the service file and its class"),
        (f"{tmp_path}/missing.py:Scaler", "is not a Python file"),
    ):
        with pytest.raises(BridgeError, match=re.escape(problem)):
            run_pipeline(bento_pipes.serve_custom, {"service": service}, config=config(project))


def test_gate_below_the_bar_skips_build_and_deploy(project: dict[str, str]) -> None:
    import bento_pipes

    deployer = BentoMLModelDeployer(home=project["BENTOML_TEST_HOME"])
    before = len(deployer.list())
    run = run_pipeline(
        bento_pipes.serve_iris, {"name": "gated", "bar": 1.01}, config=config(project)
    )
    assert run.status == "stopped"
    assert run.steps["evaluate"].status == "stopped"
    assert run.steps["bento_build"].status == "skipped"
    assert run.steps["bentoml_deploy"].status == "skipped"
    assert len(deployer.list()) == before


def test_stop_then_stop_again(served: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    deployment: Deployment = served["deployment"]
    assert main(["deployments", "stop", deployment.id[:7]]) == 0
    assert f"Stopped deployment {deployment.id}" in capsys.readouterr().out
    assert group_processes(deployment.handle["pgid"]) == []
    assert live_pids({int(p) for p in deployment.handle["tree"]}) == []
    with pytest.raises(urllib.error.URLError):
        post(deployment.url, {"data": [[5.1, 3.5, 1.4, 0.2]]})
    with pytest.raises(DeploymentGoneError, match="its status is 'stopped'"):
        served["deployer"].stop(deployment.id)
    assert main(["deployments", "stop", deployment.id]) == 2
    err = capsys.readouterr().err
    assert "is not running: its status is 'stopped'" in err and "Traceback" not in err


def test_compile_for_airflow_refuses_the_local_only_deployer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "."]) == 0
    config_file = tmp_path / ".zenml_bridge" / "config.yaml"
    config_data = json.loads(config_file.read_text())  # init writes JSON, a subset of YAML
    config_data["stacks"]["default"]["components"] = {"model_deployer": {"flavor": "bentoml"}}
    config_file.write_text(json.dumps(config_data))
    (tmp_path / "pipe.py").write_text(
        "from zenml_bridge import pipeline, step\n\n\n@step\ndef one() -> int:\n    return 1\n\n\n"
        "@pipeline\ndef p() -> None:\n    one()\n"
    )
    capsys.readouterr()
    assert main(["compile", "pipe.py:p", "--target", "airflow", "--out", "dags"]) == 2
    err = capsys.readouterr().err
    assert "the model_deployer flavor 'bentoml' works only on this machine (local_only)" in err
    assert not (tmp_path / "dags").exists() or not any((tmp_path / "dags").iterdir())
