"""Model deployer core: servers in their own process group, deployment records, the CLI.

Real processes only: ``python -m http.server`` on 127.0.0.1 (behind ``sh`` that also forks a
``sleep`` child, so that stopping must reach the whole group) and checks against ``ps``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))
from process_table import group_processes, live_pids

from zenml_bridge.cli.main import main
from zenml_bridge.deployers import (
    DeploymentGoneError,
    ModelDeployer,
    start_server,
    stop_group,
)
from zenml_bridge.errors import BridgeError
from zenml_bridge.stores.deployments import DeploymentRecords
from zenml_bridge.stores.metadata import MetadataStore

#: A server whose group holds two processes: sh's background sleep and the HTTP server.
SERVER = [
    "sh",
    "-c",
    f"sleep 300 & exec {sys.executable} -m http.server {{port}} --bind 127.0.0.1",
]


@pytest.fixture
def groups() -> Iterator[list[int]]:
    """Process groups a test started; all stopped afterwards, also when the test fails."""
    started: list[int] = []
    try:
        yield started
    finally:
        for pgid in started:
            stop_group(pgid, timeout=3)
        for pgid in started:
            assert group_processes(pgid) == [], f"process group {pgid} left behind"


def test_server_in_own_group_answers_and_stop_leaves_nothing(
    tmp_path: Path, groups: list[int]
) -> None:
    log = tmp_path / "server.log"
    pgid, port = start_server(
        SERVER, log_path=log, health_url="http://127.0.0.1:{port}/", timeout=30
    )
    groups.append(pgid)
    assert os.getpgid(pgid) == pgid != os.getpgid(0)
    assert len(group_processes(pgid)) == 2  # sh's sleep and the server
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
        assert response.status == 200
    # Bound to loopback only: the port is not open on another local address.
    with socket.socket() as probe:
        probe.settimeout(1)
        other = socket.gethostbyname(socket.gethostname())
        if not other.startswith("127."):
            assert probe.connect_ex((other, port)) != 0
    assert stop_group(pgid) is True
    assert group_processes(pgid) == []
    assert stop_group(pgid) is False  # already gone


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BridgeError, match=rf"Port {port} on 127\.0\.0\.1 is in use"):
            start_server(
                SERVER,
                log_path=tmp_path / "s.log",
                health_url="http://127.0.0.1:{port}/",
                port=port,
            )
    assert not (tmp_path / "s.log").exists()  # nothing was started


def test_never_healthy_times_out_with_log_tail_and_is_stopped(tmp_path: Path) -> None:
    cmd = ["sh", "-c", "echo loading the model from /nowhere; sleep 300 & sleep 300"]
    with pytest.raises(BridgeError) as caught:
        start_server(
            cmd, log_path=tmp_path / "s.log", health_url="http://127.0.0.1:{port}/", timeout=1.5
        )
    message = str(caught.value)
    assert "did not become healthy within 1.5 s" in message
    assert "loading the model from /nowhere" in message
    leftovers = subprocess.run(
        ["pgrep", "-f", "loading the model from /nowhere"], capture_output=True, text=True
    ).stdout
    assert leftovers.strip() == ""


def test_server_exiting_early_reports_code_and_log(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "print('bad option --frobnicate'); raise SystemExit(3)"]
    with pytest.raises(BridgeError, match=r"exited with code 3 .*\n.*bad option --frobnicate"):
        start_server(cmd, log_path=tmp_path / "s.log", health_url="http://127.0.0.1:{port}/")


def test_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BridgeError, match=r"Could not start the server: 'no-such-server-zb'"):
        start_server(["no-such-server-zb"], log_path=tmp_path / "s.log", health_url="http://x/")


class HttpDeployer(ModelDeployer):
    """A flavor serving a folder over HTTP: the smallest real local deployer."""

    flavor = "http-test"

    def deploy(self, artifact, name, config=None):  # type: ignore[no-untyped-def]
        return self.serve_local(
            SERVER, name=name, health_path="/", artifact_id=artifact, run_id="run-1"
        )


def test_deployments_recorded_listed_stopped_and_cli(
    stores_env: dict[str, str],
    groups: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = MetadataStore(stores_env["ZENML_BRIDGE_METADATA_URL"])
    deployer = HttpDeployer(store=store)
    first = deployer.deploy("a" * 64, "iris")
    groups.append(first.handle["pgid"])
    second = deployer.deploy("b" * 64, "wine")
    groups.append(second.handle["pgid"])
    assert first.url.startswith("http://127.0.0.1:") and first.status == "running"
    assert Path(first.log_path).is_file()

    assert main(["deployments", "list"]) == 0
    out = capsys.readouterr().out
    for d in (first, second):
        assert re.search(rf"{d.id}\s+http-test\s+{d.name}\s+running\s+{re.escape(d.url)}", out)
    assert "run-1" in out and "a" * 64 in out

    with urllib.request.urlopen(first.url + "/") as response:
        assert response.status == 200
    assert main(["deployments", "logs", first.id[:6], "-n", "5"]) == 0
    assert '"GET / HTTP/1.1" 200' in capsys.readouterr().out

    # A server killed behind our back is shown as exited, and stopping it is a clear error.
    os.killpg(second.handle["pgid"], 9)
    # SIGKILL takes effect when the kernel next runs the process: on a busy machine a moment
    # after killpg returns. What `list` shows once the processes are gone is what is tested.
    deadline = time.monotonic() + 30
    while group_processes(second.handle["pgid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert main(["deployments", "list"]) == 0
    assert re.search(rf"{second.id}\s+http-test\s+wine\s+exited", capsys.readouterr().out)
    assert main(["deployments", "stop", second.id]) == 2
    err = capsys.readouterr().err
    assert (
        f"Deployment {second.id} ('wine', http-test) is not running: its status is 'exited'" in err
    )
    assert "Traceback" not in err

    assert main(["deployments", "stop", first.id]) == 0
    assert f"Stopped deployment {first.id}" in capsys.readouterr().out
    assert group_processes(first.handle["pgid"]) == []
    with pytest.raises(DeploymentGoneError, match="its status is 'stopped'"):
        deployer.stop(first.id)
    assert main(["deployments", "stop", first.id]) == 2
    assert "Nothing was stopped" in capsys.readouterr().err

    assert main(["deployments", "stop", "d-nothere"]) == 2
    assert "There is no deployment 'd-nothere'" in capsys.readouterr().err
    statuses = {d.id: d.status for d in deployer.list()}
    assert statuses == {first.id: "stopped", second.id: "exited"}


def test_deployments_table_on_every_database(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    records = DeploymentRecords(store)
    records.add(
        {
            "id": "d-0001",
            "flavor": "bentoml",
            "name": "iris",
            "url": "http://127.0.0.1:1",
            "status": "running",
            "run_id": None,
            "artifact_id": None,
            "handle": {"pgid": 1, "log_path": "/x"},
            "config": {},
            "created_at": 1.0,
        }
    )
    records.update("d-0001", status="stopped", ended_at=2.0)
    row = records.resolve("d-00")
    assert row["status"] == "stopped" and row["handle"] == {"pgid": 1, "log_path": "/x"}
    assert json.loads(json.dumps(row["config"])) == {}
    store.drop_tables()


def test_schema_3_store_gains_the_deployments_table(metadata_url: str) -> None:
    """A store of the previous release (schema 3, no deployments table) migrates to 6."""
    import sqlalchemy as sa

    from zenml_bridge.stores.deployments import deployments_table
    from zenml_bridge.stores.schema import SCHEMA_VERSION

    store = MetadataStore(metadata_url, table_prefix="m3_")
    table = deployments_table(store.t)
    version = store.t.schema_version
    with store.engine.begin() as conn:
        table.drop(conn)
        conn.execute(version.update().values(version=3))
        conn.execute(store.t.statements.delete())
    again = MetadataStore(metadata_url, table_prefix="m3_")
    assert table.name in sa.inspect(again.engine).get_table_names()
    with again._read() as conn:
        assert conn.execute(sa.select(version.c.version)).scalar() == SCHEMA_VERSION == 6
    assert DeploymentRecords(again).list() == []
    again.drop_tables()


def test_deployment_of_another_host_is_not_touched(
    stores_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A shared store (PostgreSQL) lists servers of other machines: never judged or signalled
    by their process group id here (that id means another process on this machine)."""
    store = MetadataStore(stores_env["ZENML_BRIDGE_METADATA_URL"])
    deployer = HttpDeployer(store=store)
    handle = {"pgid": os.getpid(), "host": "build-box-7", "log_path": "/srv/x.log"}
    deployer.record(
        deployment_id="d-elsewhere", name="iris", url="http://127.0.0.1:9", handle=handle
    )
    assert [d.status for d in deployer.list()] == ["running"]
    assert main(["deployments", "stop", "d-elsewhere"]) == 2
    assert "runs on host 'build-box-7', not on this one" in capsys.readouterr().err
    assert main(["deployments", "logs", "d-elsewhere"]) == 2
    assert "Logs live on the machine that started the server" in capsys.readouterr().err


#: A server with a worker in its own session (like BentoML's): out of reach of the group signal.
ESCAPING = [
    "sh",
    "-c",
    f"setsid sleep 301 & exec {sys.executable} -m http.server {{port}} --bind 127.0.0.1",
]


class EscapingDeployer(ModelDeployer):
    flavor = "escaping-test"

    def deploy(self, artifact, name, config=None):  # type: ignore[no-untyped-def]
        return self.serve_local(ESCAPING, name=name, health_path="/", artifact_id=artifact)


def test_workers_in_their_own_session_are_stopped_too(
    stores_env: dict[str, str], groups: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    store = MetadataStore(stores_env["ZENML_BRIDGE_METADATA_URL"])
    deployer = EscapingDeployer(store=store)
    first = deployer.deploy(None, "a")
    groups.append(first.handle["pgid"])
    tree = {int(p) for p in first.handle["tree"]}
    assert len(tree) == 2 and first.handle["pgid"] in tree  # the server and its setsid worker
    (worker,) = tree - {first.handle["pgid"]}
    assert os.getpgid(worker) != first.handle["pgid"]
    try:
        assert main(["deployments", "stop", first.id]) == 0
        assert live_pids(tree) == []

        # The server crashes (SIGKILL): its worker lives on, so the deployment still runs, and
        # a stop ends the orphan.
        second = deployer.deploy(None, "b")
        groups.append(second.handle["pgid"])
        tree = {int(p) for p in second.handle["tree"]}
        os.kill(second.handle["pgid"], 9)
        assert [d.status for d in deployer.list() if d.id == second.id] == ["running"]
        assert main(["deployments", "stop", second.id]) == 0
        assert f"Stopped deployment {second.id}" in capsys.readouterr().out
        assert live_pids(tree) == []
    finally:
        for pid in live_pids(tree):
            os.kill(pid, 9)
