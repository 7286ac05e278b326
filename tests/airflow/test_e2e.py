"""End to end: `zenml-bridge compile`, `airflow db migrate`, `airflow dags test`.

Airflow runs the generated DAG with no scheduler; each task calls the entrypoint in this
interpreter (the environment's `python`, or named with --python when Airflow runs elsewhere),
which imports the steps from the code archive. The runs land in our stores and are compared with
a local run of the same pipeline. Few DAG runs on purpose: each costs 10-40 s.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import airflow_env

from zenml_bridge.cli.source import load_pipeline
from zenml_bridge.config import Settings
from zenml_bridge.runtime import load_run, run_pipeline
from zenml_bridge.stores.metadata import MetadataStore

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
FLOWS = Path(__file__).parent / "flows" / "shop.py"


class Site:
    """A temporary Airflow (home, dags folder) with its own zenml-bridge stores."""

    def __init__(self, root: Path, python: str) -> None:
        self.root = root
        self.python = python
        self.dags = root / "dags"
        self.home = root / "airflow"
        self.metadata_url = f"sqlite:///{root / 'metadata.db'}"
        self.artifacts = root / "artifacts"
        self.env = airflow_env(
            self.home,
            self.dags,
            ZENML_BRIDGE_METADATA_URL=self.metadata_url,
            ZENML_BRIDGE_ARTIFACT_ROOT=str(self.artifacts),
            ZENML_BRIDGE_CODE_CACHE=str(root / "code-cache"),
        )
        # One environment for Airflow and zenml-bridge (as a platform team installs them): the
        # DAG names no interpreter and tasks run the `python` of the activated environment.
        self.python_option: list[str] = ["--python", sys.executable]
        if python == sys.executable:
            self.python_option = []
            bin_dir = str(Path(sys.executable).parent)
            self.env["PATH"] = bin_dir + os.pathsep + self.env.get("PATH", "")
            for name in ("ZENML_BRIDGE_PYTHON", "ZENML_BRIDGE_AIRFLOW_PYTHON"):
                self.env.pop(name, None)

    def run(self, *command: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env=self.env, cwd=self.root, capture_output=True, text=True, timeout=timeout
        )

    def airflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.python, "-m", "airflow", *args)

    def compile(self, pipeline: str) -> Path:
        result = self.run(
            sys.executable, "-m", "zenml_bridge", "compile", f"{FLOWS}:{pipeline}",
            "--target", "airflow", "--out", str(self.dags), *self.python_option,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return self.dags / f"zenml_bridge__{pipeline}.py"

    def settings(self) -> Settings:
        return Settings(
            metadata_url=self.metadata_url, artifact_root=str(self.artifacts), home=self.root
        )

    def runs(self, pipeline: str) -> list[Any]:
        rows = MetadataStore(self.metadata_url).list_runs(pipeline=pipeline)
        return [load_run(row["run_id"], self.settings()) for row in rows]

    def task_instances(self, dag_id: str) -> dict[str, tuple[str, int]]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute(
                "select task_id, state, try_number from task_instance where dag_id = ?",
                (dag_id,),
            ).fetchall()
        return {task: (state, tries) for task, state, tries in rows}


@pytest.fixture(scope="module")
def site(af_python: str, tmp_path_factory: pytest.TempPathFactory) -> Site:
    site = Site(tmp_path_factory.mktemp("airflow-site"), af_python)
    site.compile("shop")
    site.compile("failing")
    result = site.airflow("db", "migrate")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return site


def _outputs(run: Any) -> dict[str, Any]:
    return {
        name: (
            step.cache_key,
            {out: (a.sha256, a.materializer) for out, a in sorted(step.outputs.items())},
        )
        for name, step in run.steps.items()
    }


def test_dags_test_runs_like_a_local_run_then_from_cache(site: Site, tmp_path: Path) -> None:
    conf = json.dumps({"rows": 5})
    first = site.airflow("dags", "test", "shop", "-c", conf)
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-3000:]
    (run,) = site.runs("shop")
    assert run.status == "completed"
    assert run.run_id.startswith("airflow-manual__")
    assert dict(run.parameters) == {"rows": 5, "label": 'it\'s {{ ds }} "q" \\n $HOME'}
    assert {s.status for s in run.steps.values()} == {"completed"}
    row = MetadataStore(site.metadata_url).get_run(run.run_id)
    dag_data = (site.dags / "zenml_bridge__shop.py").read_text(encoding="utf-8")
    assert row is not None and row["backend"] == "airflow"
    assert f"'code_archive_sha256': '{row['code_archive_sha256']}'" in dag_data

    shop = load_pipeline(f"{FLOWS}:shop")  # the same pipeline, run locally in other stores

    local_settings = Settings(
        metadata_url=f"sqlite:///{tmp_path / 'local.db'}",
        artifact_root=str(tmp_path / "local-artifacts"),
        home=tmp_path,
    )
    local = run_pipeline(shop, {"rows": 5}, settings=local_settings)
    assert local.status == "completed"
    assert _outputs(run) == _outputs(local)
    assert run.steps["report"].outputs["summary"].load() == {
        "small": 0 + 3,  # amounts of 5 orders: 0, 7, 3, 10, 6
        "large": 7 + 10 + 6,
        "label": 'it\'s {{ ds }} "q" \\n $HOME',
    }

    second = site.airflow("dags", "test", "shop", "-c", conf)
    assert second.returncode == 0, second.stdout[-5000:] + second.stderr[-3000:]
    again = next(r for r in site.runs("shop") if r.run_id != run.run_id)
    assert again.status == "completed"
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert _outputs(again) == _outputs(run)


def test_failing_step_fails_the_task_is_retried_and_recorded(site: Site) -> None:
    result = site.airflow("dags", "test", "failing")
    tail = (result.stdout + result.stderr)[-6000:]
    assert site.task_instances("failing") == {
        "prepare": ("success", 1),
        "explode": ("failed", 2),  # retries=1: two tries
    }, tail
    (run,) = site.runs("failing")
    assert run.status == "failed", tail
    assert run.steps["prepare"].status == "completed"
    assert run.steps["explode"].status == "failed"
    assert "RuntimeError: step explode fails on purpose" in (run.steps["explode"].error or "")
