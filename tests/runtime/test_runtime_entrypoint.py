"""``python -m zenml_bridge.entrypoint run-step``: one process per step, like Airflow/Kubeflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import zb_pipes

from zenml_bridge import ir
from zenml_bridge.runtime import load_run, run_pipeline

HERE = Path(__file__).parent


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env.update(extra or {})
    return env


def write_ir(pipeline, folder: Path) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    pipeline_ir = pipeline.to_ir()
    path = folder / f"{pipeline_ir.name}.json"
    path.write_text(ir.dumps(pipeline_ir))
    return str(path), ir.sha256(pipeline_ir)


def run_step(
    ir_path: str, sha: str, step: str, run_id: str, params: str = "{}", **kw
) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "zenml_bridge.entrypoint",
            "run-step",
            "--ir",
            ir_path,
            "--ir-sha256",
            sha,
            "--step",
            step,
            "--run-id",
            run_id,
            "--params-json",
            params,
        ],
        env=child_env(kw.get("env")),
        capture_output=True,
        text=True,
        timeout=120,
    )


def hashes(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {f"{n}.{o}": a.sha256 for n, s in run.steps.items() for o, a in s.outputs.items()}


def test_whole_pipeline_through_the_entrypoint_matches_in_process(
    tmp_path: Path, stores_env: dict[str, str]
) -> None:
    ir_path, sha = write_ir(zb_pipes.chain, tmp_path)
    for step in ir.topological_order(zb_pipes.chain.to_ir().steps):
        done = run_step(ir_path, sha, step.name, "ep-run", '{"rows": 6, "offset": 2}')
        assert done.returncode == 0, done.stderr
    via_entrypoint = load_run("ep-run")
    assert via_entrypoint.status == "completed"
    assert {s.status for s in via_entrypoint.steps.values()} == {"completed"}
    in_process = run_pipeline(zb_pipes.chain, {"rows": 6, "offset": 2}, cache=False)
    assert hashes(via_entrypoint) == hashes(in_process)
    assert len(hashes(in_process)) == 4
    assert via_entrypoint.steps["report"].outputs["output"].load() == {"value": 32, "count": 6}


def test_entrypoint_is_idempotent_per_run_and_step(
    tmp_path: Path, stores_env: dict[str, str]
) -> None:
    calls = tmp_path / "calls.txt"
    ir_path, sha = write_ir(zb_pipes.heads, tmp_path)
    env = {"ZB_TEST_CALLS": str(calls)}
    assert run_step(ir_path, sha, "load", "r1", env=env).returncode == 0
    again = run_step(ir_path, sha, "load", "r1", env=env)
    assert again.returncode == 0
    assert "already completed" in again.stdout
    assert calls.read_text().split() == ["load"]
    # a second run of the same pipeline is served from the cache
    assert run_step(ir_path, sha, "load", "r2", env=env).returncode == 0
    assert calls.read_text().split() == ["load"]
    assert load_run("r2").steps["load"].status == "cached"


def test_failing_step_exits_non_zero_and_marks_the_run_failed(
    tmp_path: Path, stores_env: dict[str, str]
) -> None:
    ir_path, sha = write_ir(zb_pipes.failing, tmp_path)
    assert run_step(ir_path, sha, "load", "bad").returncode == 0
    failed = run_step(ir_path, sha, "boom", "bad")
    assert failed.returncode == 1
    assert "boom in the user's step" in failed.stderr
    assert load_run("bad").status == "failed"


def test_user_errors_exit_2(tmp_path: Path, stores_env: dict[str, str]) -> None:
    ir_path, sha = write_ir(zb_pipes.chain, tmp_path)
    unknown = run_step(ir_path, sha, "totl", "x")
    assert unknown.returncode == 2
    assert "has no step 'totl'. Did you mean 'total'?" in unknown.stderr
    wrong_sha = run_step(ir_path, "0" * 64, "load", "x")
    assert wrong_sha.returncode == 2 and "was changed after compiling" in wrong_sha.stderr
    early = run_step(ir_path, sha, "total", "x")
    assert early.returncode == 2 and "needs step 'double', which is not run" in early.stderr


@pytest.mark.slow
def test_entrypoint_on_postgresql(
    tmp_path: Path, stores_env: dict[str, str], postgres_url: str
) -> None:
    ir_path, sha = write_ir(zb_pipes.heads, tmp_path)
    env = {"ZENML_BRIDGE_METADATA_URL": postgres_url}
    for step in ("load", "head", "total"):
        done = run_step(ir_path, sha, step, "pg-run", '{"rows": 5}', env=env)
        assert done.returncode == 0, done.stderr
    from zenml_bridge.stores.metadata import MetadataStore

    store = MetadataStore(postgres_url)
    assert store.get_run("pg-run")["status"] == "completed"  # type: ignore[index]
    assert set(store.step_runs("pg-run")) == {"load", "head", "total"}
