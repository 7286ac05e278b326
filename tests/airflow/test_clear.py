"""What the generated DAG asks of the entrypoint on a Clear, without Airflow: a later try of a
finished step runs it again (not from the cache), the same try again does not, and the
`--cache` / `--no-cache` pair that the no_cache param renders to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from zenml_bridge.cli.source import load_pipeline
from zenml_bridge.runtime.code_archive import publish_ir
from zenml_bridge.stores.metadata import MetadataStore

FLOWS = Path(__file__).parent / "flows"


def _run_step(
    tmp: Path, uri: str, sha: str, step: str, *extra: str, run_id: str = "airflow-r1"
) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ZENML_BRIDGE")},
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp / 'metadata.db'}",
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp / "artifacts"),
        "PYTHONPATH": str(FLOWS.parent),
    }
    done = subprocess.run(
        [
            sys.executable, "-m", "zenml_bridge.entrypoint", "run-step", "--ir", uri,
            "--ir-sha256", sha, "--step", step, "--run-id", run_id,
            "--params-json", '{"rows": 4}', *extra,
        ],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_a_later_try_of_a_finished_step_runs_it_again(tmp_path: Path) -> None:
    pipeline = load_pipeline("flows.deploy:diamond").to_ir()
    uri, sha = publish_ir(pipeline, str(tmp_path / "artifacts"))
    store = MetadataStore(f"sqlite:///{tmp_path / 'metadata.db'}")

    out = _run_step(tmp_path, uri, sha, "source", "--attempt", "1", "--cache", "--new-attempt")
    first = store.step_runs("airflow-r1")["source"]
    assert first["status"] == "completed" and first["attempt"] == 1
    assert f"zenml-bridge: recording into sqlite:///{tmp_path / 'metadata.db'}" in out

    # The same try again (a task re-delivered): nothing runs.
    out = _run_step(tmp_path, uri, sha, "source", "--attempt", "1", "--cache", "--new-attempt")
    assert "is already completed" in out
    assert store.step_runs("airflow-r1")["source"]["started_at"] == first["started_at"]

    # Try 2 after completion: Airflow's Clear. The step executes again, not from the cache.
    out = _run_step(tmp_path, uri, sha, "source", "--attempt", "2", "--cache", "--new-attempt")
    assert "try 2 runs it" in out
    second = store.step_runs("airflow-r1")["source"]
    assert second["status"] == "completed"
    assert second["attempt"] == 2
    assert second["started_at"] > first["ended_at"]
    assert second["ir_sha256"] == sha


def test_cache_flags_of_the_no_cache_param(tmp_path: Path) -> None:
    pipeline = load_pipeline("flows.deploy:diamond").to_ir()
    uri, sha = publish_ir(pipeline, str(tmp_path / "artifacts"))
    store = MetadataStore(f"sqlite:///{tmp_path / 'metadata.db'}")
    statuses = {}
    for run_id, flag in (
        ("airflow-a", "--cache"),
        ("airflow-b", "--cache"),
        ("airflow-c", "--no-cache"),
    ):
        _run_step(tmp_path, uri, sha, "source", "--attempt", "1", flag, run_id=run_id)
        statuses[run_id] = store.step_runs(run_id)["source"]["status"]
    assert statuses == {"airflow-a": "completed", "airflow-b": "cached", "airflow-c": "completed"}
