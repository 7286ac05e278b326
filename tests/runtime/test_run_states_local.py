"""The local runner's run states (issue 9, item 6): signals of `zenml-bridge run`, step
timeouts, os._exit, heartbeats and the lost-run sweep, `zenml-bridge runs cancel`."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import zb_states_pipes as pipes
from test_run_states import child_env, entrypoint, run, start, stop, wait_for, write_ir

from zenml_bridge.runtime import run_pipeline
from zenml_bridge.stores.metadata import MetadataStore

HERE = Path(__file__).parent
PIPES = HERE / "zb_states_pipes.py"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "zenml_bridge", *args]


@pytest.mark.parametrize(
    ("signum", "parallel"),
    [(signal.SIGINT, "1"), (signal.SIGINT, "2"), (signal.SIGTERM, "1"), (signal.SIGTERM, "2")],
)
def test_zenml_bridge_run_signal_cancels_the_run(
    metadata_url: str, tmp_path: Path, signum: int, parallel: str
) -> None:
    marker = tmp_path / "started"
    env = child_env(metadata_url, tmp_path, ZB_STATES_STARTED=str(marker))
    cmd = cli("run", f"{PIPES}:waiting", "--run-id", "local-sig", "--parallel", parallel)
    proc = start(cmd, env, tmp_path)
    try:
        wait_for(marker, proc)
        os.killpg(proc.pid, signum)  # Ctrl-C / kill reach the whole foreground group
        out, err = proc.communicate(timeout=120)
    finally:
        stop(proc)
    if signum == signal.SIGINT:
        assert proc.returncode == 130, (out, err)
        reason = "interrupted by SIGINT"
    else:
        assert proc.returncode == -signal.SIGTERM, (out, err)  # re-raised: killed by it
        reason = "terminated by SIGTERM"
    store = MetadataStore(metadata_url)
    run_row = store.get_run("local-sig")
    assert run_row is not None
    assert (run_row["status"], run_row["reason"]) == ("cancelled", reason)
    steps = store.step_runs("local-sig")
    assert steps["first"]["status"] == "completed"
    assert (steps["wait"]["status"], steps["wait"]["error"]) == ("failed", reason)


def test_local_runner_enforces_the_step_timeout(stores_env: dict[str, str]) -> None:
    run = run_pipeline(pipes.timed, raise_on_failure=False)
    assert run.status == "failed"
    assert run.steps["first"].status == "completed"
    assert run.steps["slow"].status == "failed"
    assert "Step 'slow' timed out after 1 s (its timeout)" in str(run.steps["slow"].error)


def test_local_step_with_timeout_materializes_and_records_in_its_child(
    stores_env: dict[str, str],
) -> None:
    pipeline_ir = pipes.waiting.to_ir()
    steps = tuple(
        dataclasses.replace(s, timeout_s=60.0) if s.name == "wait" else s for s in pipeline_ir.steps
    )
    os.environ["ZB_STATES_SLEEP"] = "0"
    try:
        run = run_pipeline(dataclasses.replace(pipeline_ir, steps=steps), {"rows": 4})
    finally:
        del os.environ["ZB_STATES_SLEEP"]
    assert run.status == "completed"
    assert run.steps["wait"].outputs["output"].load() == 4
    again = run_pipeline(dataclasses.replace(pipeline_ir, steps=steps), {"rows": 4})
    assert again.steps["wait"].status == "cached"


def test_local_os_exit_in_a_step_with_timeout_is_a_failure(stores_env: dict[str, str]) -> None:
    pipeline_ir = pipes.exiting.to_ir()
    steps = tuple(
        dataclasses.replace(s, timeout_s=60.0) if s.name == "exits" else s
        for s in pipeline_ir.steps
    )
    run = run_pipeline(dataclasses.replace(pipeline_ir, steps=steps), raise_on_failure=False)
    assert run.status == "failed"
    assert "ended with exit code 0 before the step finished" in str(run.steps["exits"].error)
    row = MetadataStore(stores_env["ZENML_BRIDGE_METADATA_URL"]).get_run(run.run_id)
    assert row is not None and row["status"] == "failed"


def _beating(store: MetadataStore, run_id: str, proc) -> None:  # type: ignore[no-untyped-def]
    """Until the run's heartbeat has been written after its start."""
    deadline = time.monotonic() + 60
    while True:
        row = store.get_run(run_id)
        if row is not None and row["heartbeat_at"] > row["started_at"]:
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("no heartbeat was written")
        time.sleep(0.05)


def test_sigkilled_local_run_is_marked_lost_by_runs_list(metadata_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    env = child_env(
        metadata_url,
        tmp_path,
        ZB_STATES_STARTED=str(marker),
        ZENML_BRIDGE_HEARTBEAT_INTERVAL="0.2",
    )
    proc = start(cli("run", f"{PIPES}:waiting", "--run-id", "killed-local"), env, tmp_path)
    store = MetadataStore(metadata_url)
    try:
        wait_for(marker, proc)
        _beating(store, "killed-local", proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        stop(proc)
    listed = run(cli("runs", "list"), env, tmp_path)  # default grace: not lost yet
    assert listed.returncode == 0, listed.stderr
    assert store.get_run("killed-local")["status"] == "running"  # type: ignore[index]
    time.sleep(1.5)  # longer than the grace period below, since the last heartbeat
    listed = run(cli("runs", "list"), {**env, "ZENML_BRIDGE_LOST_AFTER": "1"}, tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = store.get_run("killed-local")
    assert row is not None and row["status"] == "failed"
    assert row["reason"].startswith("lost (no heartbeat since ")
    assert "killed-local" in listed.stdout and "failed" in listed.stdout
    shown = run(cli("runs", "show", "killed-local"), env, tmp_path)
    assert "Reason     lost (no heartbeat since " in shown.stdout


def test_sigkilled_entrypoint_step_is_marked_lost_by_the_next_step(
    metadata_url: str, tmp_path: Path
) -> None:
    ir_path, sha = write_ir(pipes.waiting, tmp_path)
    marker = tmp_path / "started"
    env = child_env(
        metadata_url,
        tmp_path,
        ZB_STATES_STARTED=str(marker),
        ZENML_BRIDGE_HEARTBEAT_INTERVAL="0.2",
    )
    assert run(entrypoint(ir_path, sha, "first", "ep-lost"), env, tmp_path).returncode == 0
    proc = start(entrypoint(ir_path, sha, "wait", "ep-lost"), env, tmp_path)
    try:
        wait_for(marker, proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        stop(proc)
    store = MetadataStore(metadata_url)
    assert store.step_runs("ep-lost")["wait"]["status"] == "running"
    time.sleep(1.5)  # longer than the grace period below, since the last heartbeat
    other = run(
        entrypoint(ir_path, sha, "first", "another-run"),
        {**env, "ZENML_BRIDGE_LOST_AFTER": "1"},
        tmp_path,
    )
    assert other.returncode == 0, other.stderr
    step = store.step_runs("ep-lost")["wait"]
    assert step["status"] == "failed"
    assert step["error"].startswith("lost (no heartbeat since ")
    row = store.get_run("ep-lost")
    assert row is not None and row["status"] == "failed"
    assert store.get_run("another-run")["status"] == "running"  # type: ignore[index]


def test_runs_cancel_stops_a_local_run_before_its_next_step(
    metadata_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    env = child_env(
        metadata_url,
        tmp_path,
        ZB_STATES_STARTED=str(marker),
        ZB_STATES_RELEASE=str(tmp_path / "release"),
        ZENML_BRIDGE_HEARTBEAT_INTERVAL="0.2",
    )
    proc = start(cli("run", f"{PIPES}:waiting3", "--run-id", "to-cancel"), env, tmp_path)
    try:
        wait_for(marker, proc)
        cancelled = run(cli("runs", "cancel", "to-cancel"), env, tmp_path)
        assert cancelled.returncode == 0, cancelled.stderr
        time.sleep(2)  # ten heartbeat intervals: the runner has seen the cancel
        (tmp_path / "release").write_text("")
        out, err = proc.communicate(timeout=120)
    finally:
        stop(proc)
    assert proc.returncode == 1, (out, err)
    store = MetadataStore(metadata_url)
    row = store.get_run("to-cancel")
    assert row is not None and row["status"] == "cancelled"
    assert row["reason"].startswith("cancelled by `zenml-bridge runs cancel` at ")
    assert "after" not in store.step_runs("to-cancel")  # never started
    again = run(cli("runs", "cancel", "to-cancel"), env, tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip() == (
        "Error: Run to-cancel is cancelled, not running: there is nothing to cancel."
    )
