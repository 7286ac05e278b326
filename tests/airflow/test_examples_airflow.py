"""The examples and the `init` templates compiled for Airflow: real Airflow loads every DAG (no
import errors, one task per step), and `airflow dags test` runs the `minimal` template's DAG
into the project's own store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import airflow_env, probe

from zenml_bridge.stores.metadata import MetadataStore

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "training": (ROOT / "examples" / "quickstart" / "pipeline.py", 4),
    "e2e_training": (ROOT / "examples" / "e2e_training" / "pipeline.py", 9),
    "hello": (Path("pipeline.py"), 2),  # the minimal template, in the project folder
}


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{args[:5]}:\n{result.stdout[-5000:]}\n{result.stderr[-3000:]}"
    return result


def test_examples_and_template_load_and_run_in_airflow(af_python: str, tmp_path: Path) -> None:
    project, dags, home = tmp_path / "proj", tmp_path / "dags", tmp_path / "airflow"
    env = airflow_env(home, dags, ZENML_BRIDGE_CODE_CACHE=str(tmp_path / "code-cache"))
    for name in list(env):
        if name.startswith("ZENML_BRIDGE_") and name != "ZENML_BRIDGE_CODE_CACHE":
            env.pop(name)
    python_option: list[str] = []
    if af_python == sys.executable:  # one environment: tasks run its `python`
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    else:
        python_option = ["--python", sys.executable]
    zb = [sys.executable, "-m", "zenml_bridge"]
    _run([*zb, "init", "--template", "minimal", str(project)], tmp_path, env)
    for pipeline, (source, _) in SOURCES.items():
        _run(
            [*zb, "compile", f"{source}:{pipeline}", "--target", "airflow", "--out", str(dags),
             *python_option],
            project,
            env,
        )  # fmt: skip
    loaded = probe(af_python, dags, home)
    assert loaded["import_errors"] == {}
    for pipeline, (_, steps) in SOURCES.items():
        assert len(loaded["dags"][pipeline]["tasks"]) == steps, loaded["dags"][pipeline]

    _run([af_python, "-m", "airflow", "db", "migrate"], project, env)
    _run([af_python, "-m", "airflow", "dags", "test", "hello", "-c", '{"count": 4}'], project, env)
    store = MetadataStore(f"sqlite:///{project / '.zenml_bridge' / 'metadata.db'}")
    (run,) = store.list_runs(pipeline="hello")
    assert run["status"] == "completed" and run["backend"] == "airflow"
    assert run["parameters"]["count"] == 4
    steps = store.step_runs(run["run_id"])
    assert steps["summarize"]["metrics"] == {"mean": 1.5}
