"""Runs end in a true state (issue 9, item 6): signals, timeouts, os._exit, retries.

Real signals are sent to real processes started in their own process group (as Airflow's
BashOperator and Kubernetes do with the whole group), and the records are checked on SQLite,
PostgreSQL and MariaDB.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zb_states_pipes as pipes

from zenml_bridge import ir
from zenml_bridge.stores.metadata import MetadataStore

HERE = Path(__file__).parent


def child_env(metadata_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env["ZENML_BRIDGE_METADATA_URL"] = metadata_url
    env["ZENML_BRIDGE_ARTIFACT_ROOT"] = str(tmp_path / "artifacts")
    env["ZENML_BRIDGE_HOME"] = str(tmp_path / "home")
    env.update(extra)
    return env


def write_ir(pipeline, folder: Path) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    pipeline_ir = pipeline.to_ir()
    path = folder / f"{pipeline_ir.name}.json"
    path.write_text(ir.dumps(pipeline_ir))
    return str(path), ir.sha256(pipeline_ir)


def entrypoint(ir_path: str, sha: str, step: str, run_id: str, *extra: str) -> list[str]:
    return [
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
        *extra,
    ]


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """A process in its own process group (a test must not signal itself)."""
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    """Until the step has started (its marker file exists); fails if the process ended."""
    deadline = time.monotonic() + 120
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the process ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the step never started")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_entrypoint_signal_records_step_failed_and_ends_the_run(
    metadata_url: str, tmp_path: Path, signum: int
) -> None:
    ir_path, sha = write_ir(pipes.waiting, tmp_path)
    marker = tmp_path / "started"
    env = child_env(metadata_url, tmp_path, ZB_STATES_STARTED=str(marker))
    assert run(entrypoint(ir_path, sha, "first", "sig-run"), env, tmp_path).returncode == 0
    proc = start(entrypoint(ir_path, sha, "wait", "sig-run"), env, tmp_path)
    try:
        wait_for(marker, proc)
        os.killpg(proc.pid, signum)  # as Airflow kills a task's process group
        _, err = proc.communicate(timeout=120)
    finally:
        stop(proc)
    # Re-raised: killed by the signal (SIGTERM), or the usual KeyboardInterrupt exit (SIGINT).
    assert proc.returncode in (-signum, 128 + signum, 1), err
    assert proc.returncode != 0
    store = MetadataStore(metadata_url)
    step = store.step_runs("sig-run")["wait"]
    assert step["status"] == "failed"
    run_row = store.get_run("sig-run")
    assert run_row is not None
    if signum == signal.SIGTERM:
        assert step["error"] == (
            "terminated by SIGTERM: the orchestrator's timeout, 'Mark failed' or pod deletion"
        )
        assert run_row["status"] == "failed"
    else:
        assert step["error"] == "interrupted by SIGINT"
        assert run_row["status"] == "cancelled"
    assert "wait" in run_row["reason"] and step["error"] in run_row["reason"]


def test_entrypoint_os_exit_in_step_is_a_failure(metadata_url: str, tmp_path: Path) -> None:
    ir_path, sha = write_ir(pipes.exiting, tmp_path)
    env = child_env(metadata_url, tmp_path)
    assert run(entrypoint(ir_path, sha, "first", "exit-run"), env, tmp_path).returncode == 0
    done = run(entrypoint(ir_path, sha, "exits", "exit-run"), env, tmp_path)
    assert done.returncode == 1, done.stderr
    store = MetadataStore(metadata_url)
    step = store.step_runs("exit-run")["exits"]
    assert step["status"] == "failed"
    assert "ended with exit code 0 before the step finished" in step["error"]
    run_row = store.get_run("exit-run")
    assert run_row is not None and run_row["status"] == "failed"


def test_entrypoint_enforces_the_step_timeout(sqlite_url: str, tmp_path: Path) -> None:
    ir_path, sha = write_ir(pipes.timed, tmp_path)
    marker = tmp_path / "started"
    env = child_env(sqlite_url, tmp_path, ZB_STATES_STARTED=str(marker))
    assert run(entrypoint(ir_path, sha, "first", "slow-run"), env, tmp_path).returncode == 0
    done = run(entrypoint(ir_path, sha, "slow", "slow-run"), env, tmp_path)
    assert done.returncode == 1, done.stderr
    step_pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(step_pid, 0)  # the step's process was killed, not left behind
    store = MetadataStore(sqlite_url)
    step = store.step_runs("slow-run")["slow"]
    assert step["status"] == "failed"
    assert "Step 'slow' timed out after 1 s (its timeout)" in step["error"]
    assert store.get_run("slow-run")["status"] == "failed"  # type: ignore[index]


def test_entrypoint_retrying_then_failed_by_attempt(metadata_url: str, tmp_path: Path) -> None:
    """retries=1: attempt 1 fails -> 'retrying', run still running; attempt 2 fails -> failed."""
    ir_path, sha = write_ir(pipes.retried, tmp_path)
    flag = tmp_path / "fail"
    flag.write_text("")
    env = child_env(metadata_url, tmp_path, ZB_STATES_FAIL=str(flag))
    assert run(entrypoint(ir_path, sha, "first", "retry-run"), env, tmp_path).returncode == 0
    store = MetadataStore(metadata_url)

    done = run(entrypoint(ir_path, sha, "flaky", "retry-run", "--attempt", "1"), env, tmp_path)
    assert done.returncode == 1
    assert store.step_runs("retry-run")["flaky"]["status"] == "retrying"
    assert store.step_runs("retry-run")["flaky"]["attempt"] == 1
    assert store.get_run("retry-run")["status"] == "running"  # type: ignore[index]

    done = run(entrypoint(ir_path, sha, "flaky", "retry-run", "--attempt", "2"), env, tmp_path)
    assert done.returncode == 1
    assert store.step_runs("retry-run")["flaky"]["status"] == "failed"
    assert store.step_runs("retry-run")["flaky"]["attempt"] == 2
    assert store.get_run("retry-run")["status"] == "failed"  # type: ignore[index]


def test_entrypoint_attempt_derived_from_records_and_retry_completes(
    sqlite_url: str, tmp_path: Path
) -> None:
    ir_path, sha = write_ir(pipes.retried, tmp_path)
    flag = tmp_path / "fail"
    flag.write_text("")
    env = child_env(sqlite_url, tmp_path, ZB_STATES_FAIL=str(flag))
    assert run(entrypoint(ir_path, sha, "first", "derive"), env, tmp_path).returncode == 0
    store = MetadataStore(sqlite_url)
    assert run(entrypoint(ir_path, sha, "flaky", "derive"), env, tmp_path).returncode == 1
    assert store.step_runs("derive")["flaky"]["status"] == "retrying"
    flag.unlink()
    done = run(entrypoint(ir_path, sha, "flaky", "derive"), env, tmp_path)
    assert done.returncode == 0, done.stderr
    row = store.step_runs("derive")["flaky"]
    assert (row["status"], row["attempt"]) == ("completed", 2)
    run_row = store.get_run("derive")
    assert run_row is not None and run_row["status"] == "completed"


def test_entrypoint_attempt_flag_is_checked(sqlite_url: str, tmp_path: Path) -> None:
    ir_path, sha = write_ir(pipes.retried, tmp_path)
    env = child_env(sqlite_url, tmp_path)
    done = run(entrypoint(ir_path, sha, "first", "r", "--attempt", "0"), env, tmp_path)
    assert done.returncode == 2
    assert "--attempt: must be a whole number of 1 or more, not '0'" in done.stderr
