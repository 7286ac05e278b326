"""Many processes on one store; a step killed with SIGKILL in the middle of a write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zenml_bridge.runtime import load_run
from zenml_bridge.stores.metadata import MetadataStore

HERE = Path(__file__).parent
SCRIPT = """
import sys, zb_pipes
for i in range(3):
    run = zb_pipes.chain(rows=int(sys.argv[1]) * 10 + i, cache=False)
    assert run.status == "completed", run
print("ok")
"""


def _env(metadata_url: str, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
        ZENML_BRIDGE_METADATA_URL=metadata_url,
        ZENML_BRIDGE_ARTIFACT_ROOT=str(tmp_path / "artifacts"),
        ZENML_BRIDGE_HOME=str(tmp_path / "home"),
    )
    return env


def _eight_processes(metadata_url: str, tmp_path: Path) -> None:
    MetadataStore(metadata_url)  # schema first, like `zenml-bridge init`
    env = _env(metadata_url, tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(i)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert "database is locked" not in err
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    store = MetadataStore(metadata_url)
    runs = store.list_runs(limit=100)
    assert len(runs) == 24
    assert {r["status"] for r in runs} == {"completed"}
    step_runs = [s for r in runs for s in store.step_runs(r["run_id"]).values()]
    assert len(step_runs) == 24 * 4
    assert len(store.list_artifacts(limit=1000)) == 24 * 4


@pytest.mark.slow
def test_eight_processes_on_one_sqlite_store(tmp_path: Path) -> None:
    _eight_processes(f"sqlite:///{tmp_path / 'metadata.db'}", tmp_path)


@pytest.mark.slow
def test_eight_processes_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    _eight_processes(postgres_url, tmp_path)


@pytest.mark.slow
def test_sigkill_mid_write_leaves_no_artifact_and_rerun_uses_cache(
    tmp_path: Path, stores_env: dict[str, str]
) -> None:
    import zb_pipes

    from zenml_bridge import ir

    pipeline_ir = zb_pipes.blobs.to_ir()
    ir_path = tmp_path / "blobs.json"
    ir_path.write_text(ir.dumps(pipeline_ir))
    sha = ir.sha256(pipeline_ir)
    marker = tmp_path / "writing"
    calls = tmp_path / "calls.txt"
    env = {**_env(stores_env["ZENML_BRIDGE_METADATA_URL"], tmp_path), "ZB_TEST_CALLS": str(calls)}

    def step(name: str, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "zenml_bridge.entrypoint",
                "run-step",
                "--ir",
                str(ir_path),
                "--ir-sha256",
                sha,
                "--step",
                name,
                "--run-id",
                "killed",
            ],
            env={**env, **(extra or {})},
            cwd=tmp_path,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    assert step("load").wait(timeout=120) == 0
    writer = step("make_blob", {"ZB_TEST_WRITING": str(marker)})
    deadline = time.time() + 120
    while not marker.exists():
        assert writer.poll() is None, writer.communicate()
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    step_dir = Path(stores_env["ZENML_BRIDGE_ARTIFACT_ROOT"]) / "blobs" / "killed" / "make_blob"
    assert not (step_dir / "output").exists()  # only a temporary folder may be left
    assert all(name.startswith(".output.tmp-") for name in os.listdir(step_dir))
    # Recorded "running" when it started (its heartbeat stops: a later sweep marks it lost).
    killed = MetadataStore(env["ZENML_BRIDGE_METADATA_URL"]).step_runs("killed")["make_blob"]
    assert killed["status"] == "running" and killed["outputs"] == {}

    calls.write_text("")
    rerun = subprocess.run(
        [sys.executable, "-c", "import zb_pipes; print(zb_pipes.blobs().run_id)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert calls.read_text().split() == ["make_blob", "blob_size"]  # load came from the cache
    run = load_run(rerun.stdout.strip())
    assert run.steps["load"].status == "cached"
    assert run.steps["blob_size"].outputs["output"].load() == 5000
    # the killed run completes when the orchestrator retries its steps (cache hits now)
    for name in ("make_blob", "blob_size"):
        retry = step(name)
        _out, err = retry.communicate(timeout=120)
        assert retry.returncode == 0, err
    killed = load_run("killed")
    assert killed.status == "completed"
    assert killed.steps["make_blob"].status == "cached"
