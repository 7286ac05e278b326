"""Shared by the integration tests (GX, Evidently, ...): a fresh stack, the CLI, Airflow.

:func:`make_settings` is a fixture (a fresh local stack in ``tmp_path``, with components);
:func:`run_cli` runs ``python -m zenml_bridge ...`` as a user does; :func:`dags_test` runs one
pipeline through `airflow dags test`: it compiles ``FILE:pipeline`` for Airflow into a
temporary dags folder, migrates a temporary Airflow database (SQLite), runs the DAG once with
no scheduler and returns the task states and the stores the tasks wrote. Airflow and
zenml-bridge share this interpreter's environment (the tox envs install both), as a platform
team installs them. Each call costs a DAG run (10-40 s).

    from integration_support import dags_test

    states, settings = dags_test(Path("flows.py"), "gated", {"fault": "nulls"}, tmp_path)
    assert states["train"] == "skipped"
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from zenml_bridge.config import Settings


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Settings of a fresh local stack in tmp_path, with optional stack components."""

    def make(**components: Any) -> Settings:
        home = tmp_path / ".zenml_bridge"
        home.mkdir(exist_ok=True)
        return Settings(
            metadata_url=f"sqlite:///{home / 'metadata.db'}",
            artifact_root=str(home / "artifacts"),
            components=components,
            home=home,
        )

    return make


def run_cli(
    *args: str, cwd: Path, path: tuple[Path, ...] | list[Path] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m zenml_bridge ARGS`` in a new home under ``cwd``, ``path`` on PYTHONPATH."""
    env = dict(os.environ, ZENML_BRIDGE_HOME=str(cwd / "home"))
    env["PYTHONPATH"] = os.pathsep.join([*map(str, path), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "zenml_bridge", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def dags_test(
    flow: Path, pipeline: str, conf: Mapping[str, Any], root: Path
) -> tuple[dict[str, str], Settings]:
    """``(task id -> state, settings of the run's stores)`` after one `airflow dags test`."""
    dags, home = root / "dags", root / "airflow"
    settings = Settings(
        metadata_url=f"sqlite:///{root / 'metadata.db'}",
        artifact_root=str(root / "artifacts"),
        home=root,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONWARNINGS="ignore",
        ZENML_BRIDGE_METADATA_URL=settings.metadata_url,
        ZENML_BRIDGE_ARTIFACT_ROOT=settings.artifact_root,
        ZENML_BRIDGE_CODE_CACHE=str(root / "code-cache"),
        # Tasks run `python` from PATH: this environment's.
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )

    def run(*command: str) -> None:
        done = subprocess.run(
            command, env=env, cwd=root, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    run(sys.executable, "-m", "zenml_bridge", "compile", f"{flow}:{pipeline}",
        "--target", "airflow", "--out", str(dags))  # fmt: skip
    run(sys.executable, "-m", "airflow", "db", "migrate")
    run(sys.executable, "-m", "airflow", "dags", "test", pipeline, "-c", json.dumps(dict(conf)))
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "select task_id, state from task_instance where dag_id = ?", (pipeline,)
        ).fetchall()
    return {task: state for task, state in rows}, settings
