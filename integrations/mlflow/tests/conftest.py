"""Fixtures: a real sqlite:/// MLflow store and a real `mlflow server` on 127.0.0.1.

MLflow's first connection to a new database runs its schema migrations (seconds), so one
migrated template database is made per session and copied for every test that needs one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zenml_bridge.config import Settings

# A tracking URI from the developer's shell must not leak into tests.
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_REGISTRY_URI", None)
os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # tests do not phone home


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """`mlflow server` in its own process group, bound to 127.0.0.1; stop() ends the group."""

    def __init__(self, folder: Path, template: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.db = folder / "server.db"
        shutil.copyfile(template, self.db)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        self.start()

    def start(self) -> None:
        """Start (or start again, same port and database) and wait until /health answers."""
        mlflow_cli = Path(sys.executable).with_name("mlflow")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(mlflow_cli),
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--backend-store-uri",
                    f"sqlite:///{self.db}",
                    "--artifacts-destination",
                    str(self.folder / "artifacts"),
                    "--workers",
                    "1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() takes the workers too
                env=env,
                cwd=self.folder,
            )
        self._wait_healthy(timeout=180)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited early:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None or _group_alive(self.process.pid):
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while _group_alive(self.process.pid) and time.monotonic() < deadline:
                self.process.poll()
                time.sleep(0.1)
            if _group_alive(self.process.pid):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process.wait(timeout=10)
        # Wait until nothing listens any more, so "server down" is really down.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite database with its schema already migrated."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def sqlite_uri(tmp_path: Path, mlflow_template: Path) -> str:
    path = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def mlflow_server(
    tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path
) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"), mlflow_template)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_server(tmp_path: Path, mlflow_template: Path) -> Iterator[Any]:
    """Start a private server (for tests that take it down); all are stopped afterwards."""
    servers: list[MlflowServer] = []

    def start() -> MlflowServer:
        server = MlflowServer(tmp_path / f"server{len(servers)}", mlflow_template)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Settings of a fresh local stack in tmp_path with an MLflow tracker block."""

    def make(tracking_uri: str | None, **tracker: Any) -> Settings:
        home = tmp_path / ".zenml_bridge"
        home.mkdir(exist_ok=True)
        block: dict[str, Any] = {"flavor": "mlflow", **tracker}
        if tracking_uri is not None:
            block["tracking_uri"] = tracking_uri
        return Settings(
            metadata_url=f"sqlite:///{home / 'metadata.db'}",
            artifact_root=str(home / "artifacts"),
            experiment_tracker=block,
            home=home,
        )

    return make


@pytest.fixture
def no_tracker_settings(tmp_path: Path) -> Settings:
    home = tmp_path / ".zenml_bridge"
    home.mkdir(exist_ok=True)
    return Settings(
        metadata_url=f"sqlite:///{home / 'metadata.db'}",
        artifact_root=str(home / "artifacts"),
        home=home,
    )
