"""The seldon deployer with the real seldon-core REST wrapper on 127.0.0.1, over real HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy.testing
import pytest
import seldon_pipelines as sp
from conftest import seldon_servers
from zenml_bridge.cli.main import main
from zenml_bridge.deployers import DeploymentGoneError
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import load_run, run_pipeline

from zenml_bridge_seldon.deployer import SeldonModelDeployer

pytestmark = pytest.mark.slow


def predict(url: str, rows: list[list[float]]) -> Any:
    body = json.dumps({"data": {"ndarray": rows}}).encode()
    request = urllib.request.Request(
        f"{url}/api/v1.0/predictions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_pipeline_serves_the_model_and_cli_lists_logs_and_stops_it(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_pipeline(sp.serve_iris)
    assert run.status == "completed"
    url = run.steps["seldon_deploy"].outputs["url"].load()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    model = run.steps["train"].outputs["model"].load()
    rows = sp.iris_rows()

    answer = predict(url, rows)
    assert answer["data"]["ndarray"] == model.predict(rows).tolist()
    assert len(set(answer["data"]["ndarray"])) == 3  # a real model, not a constant

    # Served on loopback only, in a process group of its own (server + metrics manager).
    (deployment,) = SeldonModelDeployer().list()
    assert deployment.flavor == "seldon" and deployment.status == "running"
    assert deployment.run_id == run.run_id
    assert deployment.artifact_id == run.steps["train"].outputs["model"].artifact_id
    pgid = int(deployment.handle["pgid"])
    assert pgid != os.getpgid(0)
    assert {g for _, g, _ in seldon_servers(str(home.parent))} == {pgid}
    assert "--host 127.0.0.1" in seldon_servers(str(home.parent))[0][2]

    code, out, _ = cli(capsys, "deployments", "list")
    assert code == 0
    assert deployment.id in out and "seldon" in out and run.run_id in out and url in out
    code, out, _ = cli(capsys, "deployments", "logs", deployment.id)
    assert code == 0 and "POST /api/v1.0/predictions" in out

    code, out, _ = cli(capsys, "deployments", "stop", deployment.id)
    assert code == 0 and "Stopped" in out
    assert seldon_servers(str(home.parent)) == []
    with pytest.raises(urllib.error.URLError):
        predict(url, rows)
    # Stopping it again: a clear message, exit code 2, no traceback.
    code, out, err = cli(capsys, "deployments", "stop", deployment.id)
    assert code == 2
    assert f"Deployment {deployment.id} ('iris', seldon) is not running" in err
    assert "Traceback" not in err

    # The deploy step is never served from the cache: a second run starts a new server.
    again = run_pipeline(sp.serve_iris)
    assert again.steps["train"].status == "cached"
    assert again.steps["seldon_deploy"].status == "completed"
    second = SeldonModelDeployer().get(
        load_run(again.run_id).steps["seldon_deploy"].metadata["deployment_id"]
    )
    assert second.status == "running" and second.id != deployment.id
    assert predict(second.url, rows)["data"]["ndarray"] == model.predict(rows).tolist()
    assert SeldonModelDeployer().stop(second.id).status == "stopped"
    assert seldon_servers(str(home.parent)) == []


def test_a_model_below_the_bar_is_not_deployed(home: Path) -> None:
    run = run_pipeline(sp.serve_iris, {"bar": 1.01})
    assert run.status == "stopped"
    assert run.steps["evaluate"].status == "stopped"
    assert run.steps["seldon_deploy"].status == "skipped"
    assert SeldonModelDeployer().list() == []
    assert seldon_servers(str(home.parent)) == []


def test_predict_proba_from_an_artifact_record_and_a_gone_server(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The deployer on its own, with the method option; the server killed behind its back."""
    run = run_pipeline(sp.manifest_iris)  # trains (and writes a manifest) without serving
    record = run.steps["train"].outputs["model"]
    deployer = SeldonModelDeployer()
    deployment = deployer.deploy(record, "iris-proba", {"method": "predict_proba"})
    try:
        rows = sp.iris_rows()
        answer = predict(deployment.url, rows)
        expected = record.load().predict_proba(rows)
        numpy.testing.assert_allclose(answer["data"]["ndarray"], expected, rtol=1e-12)
    finally:
        os.killpg(int(deployment.handle["pgid"]), signal.SIGKILL)
    # Processes die asynchronously after SIGKILL: poll (bounded) until the record says so.
    deadline = time.monotonic() + 15
    while deployer.get(deployment.id).status == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert deployer.get(deployment.id).status == "exited"
    assert seldon_servers(str(home.parent)) == []
    with pytest.raises(DeploymentGoneError, match=re.escape("its status is 'exited'")):
        deployer.stop(deployment.id)
    code, _, err = cli(capsys, "deployments", "stop", deployment.id)
    assert code == 2 and "is not running" in err and "Traceback" not in err


def test_a_model_type_seldon_cannot_serve(home: Path) -> None:
    with pytest.raises(
        BridgeError, match=re.escape("Seldon cannot serve a model of type builtins.dict")
    ):
        run_pipeline(sp.serve_a_dict)
    assert SeldonModelDeployer().list() == []
    assert seldon_servers(str(home.parent)) == []


def test_port_in_use(home: Path) -> None:
    run = run_pipeline(sp.manifest_iris)
    record = run.steps["train"].outputs["model"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BridgeError, match=re.escape(f"Port {port} on 127.0.0.1 is in use")):
            SeldonModelDeployer().deploy(record, "iris", {"port": port})
    assert SeldonModelDeployer().list() == []
    assert seldon_servers(str(home.parent)) == []


def test_never_healthy_times_out_with_the_log_tail(home: Path, tmp_path: Path) -> None:
    # A model file that is a FIFO nobody writes: the server blocks reading it, never listens.
    folder = tmp_path / "stuck-model"
    folder.mkdir()
    os.mkfifo(folder / "model.joblib")
    artifact = {"id": None, "uri": str(folder), "sha256": "", "materializer": "sklearn.joblib"}
    with pytest.raises(BridgeError) as info:
        SeldonModelDeployer(timeout=3).deploy(artifact, "stuck", {})
    message = str(info.value)
    assert "The seldon server for 'stuck' did not become healthy within 3 s" in message
    assert "it was stopped. Its log (" in message and "server.log) ends with:" in message
    assert "raise the timeout" in message
    assert SeldonModelDeployer().list() == []
    assert seldon_servers(str(home.parent)) == []


def test_a_tampered_model_is_refused_before_unpickling(home: Path) -> None:
    run = run_pipeline(sp.manifest_iris)
    record = run.steps["train"].outputs["model"]
    model_file = Path(record.uri) / "model.joblib"
    os.chmod(model_file, 0o644)
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(BridgeError) as info:
        SeldonModelDeployer().deploy(record, "iris", {})
    message = str(info.value)
    assert "exited with code 1 before it became healthy" in message
    assert "content hash" in message or "corrupt" in message.lower()
    assert seldon_servers(str(home.parent)) == []
