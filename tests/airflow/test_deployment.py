"""Generated DAGs on a REAL Airflow 3 deployment (see deployment.py): what `dags test` hides.

One LocalExecutor deployment for the module's first part, then one CeleryExecutor deployment
with two workers. Airflow runs through the environment's ``bin/airflow`` with that environment
NOT on PATH, and with no ZENML_BRIDGE_* variable unless a test gives the workers one. Runs are
triggered through the REST API. Few runs on purpose: each costs 5-20 s on 2 cores.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deployment import Deployment, deployment
from support import data_of

from zenml_bridge.cli.source import load_pipeline
from zenml_bridge.config import Settings
from zenml_bridge.runtime import load_run, run_pipeline
from zenml_bridge.stores.metadata import MetadataStore

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
FLOWS = Path(__file__).parent / "flows" / "deploy.py"
AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
PIPELINES = ("diamond", "flaky", "sleepy", "napping")
LOST_AFTER_S = 6  # the workers' ZENML_BRIDGE_LOST_AFTER


def _airflow_major() -> int:
    try:
        import airflow
    except ImportError:
        return 0
    return int(airflow.__version__.split(".")[0])


if _airflow_major() < 3:
    pytest.skip(
        "the real-deployment tests drive Airflow 3 (tox -e airflow3); Airflow 2 has "
        "test_deployment_airflow2.py",
        allow_module_level=True,
    )


def our_run_id(dag_id: str, airflow_run_id: str) -> str:
    """Our run id of an Airflow DAG run (the generated file's run_id filter, documented)."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", airflow_run_id).strip("-")[:80]
    key = f"{dag_id}\n{airflow_run_id}".encode()
    return f"airflow-{readable}-{hashlib.sha256(key).hexdigest()[:8]}"


class Project:
    """A user's project: `zenml-bridge init`, compile into the deployment's dags folder."""

    def __init__(self, root: Path, dags: Path, home: Path) -> None:
        self.root = root
        self.dags = dags
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
        root.mkdir(parents=True, exist_ok=True)
        # A module name of its own: the local comparison run imports it from here too.
        (root / "deploy_flows.py").write_bytes(FLOWS.read_bytes())
        self.cli("init")
        self.metadata_url = f"sqlite:///{(root / '.zenml_bridge' / 'metadata.db').resolve()}"
        self.artifacts = (root / ".zenml_bridge" / "artifacts").resolve()

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "zenml_bridge", *args],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def compile(self, pipeline: str) -> None:
        src = f"deploy_flows.py:{pipeline}"
        self.cli("compile", src, "--target", "airflow", "--out", str(self.dags))

    def settings(self, metadata_url: str | None = None, artifacts: Path | None = None) -> Settings:
        return Settings(
            metadata_url=metadata_url or self.metadata_url,
            artifact_root=str(artifacts or self.artifacts),
            home=self.root,
        )


def _local_outputs(project: Project, tmp: Path, parameters: dict[str, Any]) -> dict[str, Any]:
    """The same pipeline (same file) run by the local runner in stores of its own."""
    settings = Settings(
        metadata_url=f"sqlite:///{tmp / 'local.db'}", artifact_root=str(tmp / "local"), home=tmp
    )
    source = f"{project.root / 'deploy_flows.py'}:diamond"
    # An earlier site's copy of the module may be imported in this process under the same name:
    # the worker's code check would (rightly) refuse it, so import this project's file.
    sys.modules.pop("deploy_flows", None)
    run = run_pipeline(load_pipeline(source), parameters, settings=settings)
    assert run.status == "completed"
    return _outputs(run)


def _outputs(run: Any) -> dict[str, Any]:
    return {
        name: (step.cache_key, {o: a.sha256 for o, a in sorted(step.outputs.items())})
        for name, step in run.steps.items()
        if name != "join"  # join's second output is the interpreter's path
    } | {"join.summary": run.steps["join"].outputs["summary"].sha256}


def _run(site: Deployment, dag_id: str, conf: dict[str, Any]) -> tuple[str, str]:
    run_id = site.trigger(dag_id, conf)
    return run_id, site.wait_for_run(dag_id, run_id)


# -- LocalExecutor -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("af3-local")
    home = root / "home"
    home.mkdir()
    started = time.monotonic()
    # A short heartbeat and grace period (worker settings a platform team tunes) so that a
    # killed step is found lost within the test; nothing else of zenml-bridge is configured.
    lost = {"ZENML_BRIDGE_HEARTBEAT_INTERVAL": "1", "ZENML_BRIDGE_LOST_AFTER": str(LOST_AFTER_S)}
    with deployment(root, AIRFLOW_BIN, "LocalExecutor", HOME=str(home), **lost) as site:
        print(f"LocalExecutor deployment up in {time.monotonic() - started:.0f}s")
        yield site


@pytest.fixture(scope="module")
def project(local_site: Deployment) -> Project:
    project = Project(local_site.root / "project", local_site.dags, local_site.root / "home")
    for name in PIPELINES:
        project.compile(name)
    for name in PIPELINES:
        local_site.wait_for_dag(name)
    return project


def test_diamond_runs_with_the_worker_python_into_the_project(
    local_site: Deployment, project: Project, tmp_path: Path
) -> None:
    """No venv on PATH, no variables: steps run and land in the project's own stores."""
    site = local_site
    dag = site.request("GET", "/api/v2/dags/diamond/details")
    assert dag["params"]["rows"]["description"] == "how many numbers to make."
    run_id, state = _run(site, "diamond", {"rows": 6, "label": "first"})
    assert state == "success", site.task_states("diamond", run_id)
    run = load_run(our_run_id("diamond", run_id), project.settings())
    assert run.status == "completed"
    assert {s.status for s in run.steps.values()} == {"completed"}
    assert dict(run.parameters) == {"rows": 6, "label": "first"}
    assert run.steps["join"].outputs["summary"].load() == {"even": 6, "odd": 9, "label": "first"}
    assert Path(run.steps["join"].outputs["python"].load()).parent == AIRFLOW_BIN.parent
    assert _outputs(run) == _local_outputs(project, tmp_path, {"rows": 6, "label": "first"})
    assert "No runs yet" not in project.cli("runs", "list")
    # Each task says where it records (not only the first time anything is created).
    for task in ("source", "join"):
        log = site.task_log("diamond", run_id, task, 1)
        assert f"zenml-bridge: recording into {project.metadata_url}" in log
    # No XCom: the status line of a task is not pushed.
    xcoms = site.request(
        "GET", f"/api/v2/dags/diamond/dagRuns/{run_id}/taskInstances/join/xcomEntries"
    )
    assert xcoms["xcom_entries"] == []

    again_id, state = _run(site, "diamond", {"rows": 6, "label": "first"})
    assert state == "success"
    again = load_run(our_run_id("diamond", again_id), project.settings())
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert _outputs(again) == _outputs(run)

    # no_cache re-runs every step.
    fresh_id, state = _run(site, "diamond", {"rows": 6, "label": "first", "no_cache": True})
    assert state == "success"
    fresh = load_run(our_run_id("diamond", fresh_id), project.settings())
    assert {s.status for s in fresh.steps.values()} == {"completed"}


def test_clear_really_reruns_the_step(local_site: Deployment, project: Project) -> None:
    site = local_site
    run_id, state = _run(site, "diamond", {"rows": 4, "label": "clear"})
    assert state == "success"
    ours = our_run_id("diamond", run_id)
    store = MetadataStore(project.metadata_url)
    before = store.step_runs(ours)
    site.clear("diamond", run_id, ["join"])
    site.wait_for_task("diamond", run_id, "join", "success", timeout=180)
    assert site.wait_for_run("diamond", run_id) == "success"
    after = store.step_runs(ours)
    assert site.task_states("diamond", run_id)["join"] == ("success", 2)
    assert after["join"]["status"] == "completed"  # executed again, not served from the cache
    assert after["join"]["started_at"] > before["join"]["ended_at"]
    assert after["source"]["started_at"] == before["source"]["started_at"]  # not cleared
    assert store.get_run(ours)["status"] == "completed"


def test_unknown_conf_key_fails_the_first_task_without_retries(
    local_site: Deployment, project: Project
) -> None:
    site = local_site
    run_id, state = _run(site, "diamond", {"rowz": 3})
    assert state == "failed"
    states = site.task_states("diamond", run_id)
    assert states["source"] == ("failed", 1)
    log = site.task_log("diamond", run_id, "source", 1)
    assert "The run's conf has 'rowz', which pipeline 'diamond' does not take." in log
    assert "Its parameters: rows, label (and 'no_cache')." in log


def test_failing_step_is_retried_and_recorded(local_site: Deployment, project: Project) -> None:
    site = local_site
    run_id, state = _run(site, "flaky", {})
    assert state == "failed"
    assert site.task_states("flaky", run_id) == {
        "prepare": ("success", 1),
        "explode": ("failed", 2),
    }
    run = load_run(our_run_id("flaky", run_id), project.settings())
    assert run.status == "failed"
    assert run.steps["prepare"].status == "completed"
    assert run.steps["explode"].status == "failed"
    assert "RuntimeError: step explode fails on purpose" in (run.steps["explode"].error or "")
    row = MetadataStore(project.metadata_url).step_runs(run.run_id)["explode"]
    assert row["attempt"] == 2  # Airflow's try number


def test_timeout_is_recorded_as_a_failed_step(local_site: Deployment, project: Project) -> None:
    """execution_timeout (and the entrypoint's own limit, the same 4 s): failed, with why."""
    site = local_site
    run_id, state = _run(site, "sleepy", {"seconds": 120.0})
    assert state == "failed"
    assert site.task_states("sleepy", run_id) == {"slow": ("failed", 1)}
    ours = our_run_id("sleepy", run_id)
    store = MetadataStore(project.metadata_url)
    row = _wait_for_step(store, ours, "slow", "failed")
    assert re.search(r"SIGTERM|timed out|timeout", row["error"] or ""), row["error"]
    assert store.get_run(ours)["status"] == "failed"


def _wait_for_step(store: MetadataStore, run_id: str, step: str, status: str) -> dict[str, Any]:
    """The step's record once it has ``status`` (the entrypoint records before it exits, but
    Airflow may report the task's state first)."""
    deadline = time.monotonic() + 90
    while True:
        row = store.step_runs(run_id).get(step)
        if row is not None and row["status"] == status:
            return dict(row)
        if time.monotonic() > deadline:
            raise AssertionError(f"step {step} of {run_id} is {row and row['status']}: {row}")
        time.sleep(0.5)


def test_mark_failed_is_recorded_with_the_reason(local_site: Deployment, project: Project) -> None:
    site = local_site
    run_id = site.trigger("napping", {"seconds": 300.0})
    ours = our_run_id("napping", run_id)
    store = MetadataStore(project.metadata_url)
    _wait_for_step(store, ours, "nap", "running")
    site.set_task_state("napping", run_id, "nap", "failed")
    assert site.wait_for_run("napping", run_id) == "failed"
    row = _wait_for_step(store, ours, "nap", "failed")
    assert "SIGTERM" in (row["error"] or ""), row["error"]
    assert store.get_run(ours)["status"] == "failed"


def _step_heartbeat(project: Project, run_id: str, step: str) -> float:
    """When the step's process last said it was alive (read from the project's SQLite)."""
    database = project.metadata_url[len("sqlite:///") :]
    db = sqlite3.connect(database)
    try:
        (beat,) = db.execute(
            "SELECT heartbeat_at FROM zb_step_runs WHERE run_id = ? AND step = ?", (run_id, step)
        ).fetchone()
    finally:
        db.close()
    return float(beat)


def _step_processes(run_id: str, step: str) -> list[int]:
    """The entrypoint processes of one step of one of our runs (parent and forked child)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"zenml_bridge.entrypoint" in argv and run_id.encode() in argv and step.encode() in argv:
            found.append(int(proc.name))
    return found


def test_killed_step_is_swept_to_failed_by_the_next_task(
    local_site: Deployment, project: Project
) -> None:
    site = local_site
    run_id = site.trigger("napping", {"seconds": 300.0})
    ours = our_run_id("napping", run_id)
    store = MetadataStore(project.metadata_url)
    _wait_for_step(store, ours, "nap", "running")
    pids = _step_processes(ours, "nap")
    assert pids
    for pid in pids:  # what the OOM killer or a lost machine does: no signal handler runs
        os.kill(pid, signal.SIGKILL)
    assert site.wait_for_run("napping", run_id) == "failed"
    killed = store.step_runs(ours)["nap"]
    assert killed["status"] == "running"  # nobody could record it
    # The next task sweeps steps silent for longer than ZENML_BRIDGE_LOST_AFTER (6 s): start
    # it once that is the case, so that its sweep has something to find.
    while time.time() - _step_heartbeat(project, ours, "nap") <= LOST_AFTER_S:
        time.sleep(0.5)
    _, state = _run(site, "napping", {"seconds": 0.1})  # its task sweeps the store
    assert state == "success"
    row = _wait_for_step(store, ours, "nap", "failed")
    assert store.get_run(ours)["status"] == "failed"
    assert "lost (no heartbeat since" in str(store.run_state(ours)["reason"]), row


def test_fix_then_clear_records_the_new_ir_per_step(
    local_site: Deployment, project: Project
) -> None:
    """Last of the module: it changes the project's code."""
    site = local_site
    run_id, state = _run(site, "diamond", {"rows": 3, "label": "fix"})
    assert state == "success"
    dag_file = site.dags / "zenml_bridge__diamond.py"
    old_sha = data_of(dag_file.read_text(encoding="utf-8"))["ir_sha256"]
    flows = project.root / "deploy_flows.py"
    code = flows.read_text(encoding="utf-8")
    fixed = code.replace(
        '"label": label}, sys.executable', '"label": label.upper()}, sys.executable'
    )
    assert fixed != code
    flows.write_text(fixed, encoding="utf-8")
    project.compile("diamond")
    new_sha = data_of(dag_file.read_text(encoding="utf-8"))["ir_sha256"]
    assert new_sha != old_sha
    site.clear("diamond", run_id, ["join"])
    site.wait_for_task("diamond", run_id, "join", "success", timeout=180)
    assert site.wait_for_run("diamond", run_id) == "success"
    ours = our_run_id("diamond", run_id)
    rows = MetadataStore(project.metadata_url).step_runs(ours)
    assert rows["join"]["ir_sha256"] == new_sha
    assert rows["source"]["ir_sha256"] == old_sha
    run = load_run(ours, project.settings())
    assert run.status == "completed"
    assert run.ir_sha256 == new_sha
    assert run.steps["join"].outputs["summary"].load() == {"even": 2, "odd": 1, "label": "FIX"}
