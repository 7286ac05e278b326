"""StopPipeline (issue 12): a gate step stops the run on purpose, locally and per step process.

The stopped step's outputs are stored, it is recorded ``stopped`` with its reason (not
retried, no cache entry), the steps downstream are ``skipped``, the run ``stopped``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import zb_gate_pipes as pipes

from zenml_bridge import HTML, BridgeError, ir
from zenml_bridge.errors import STOP_EXIT_CODE
from zenml_bridge.runtime import load_run, run_pipeline
from zenml_bridge.stores.metadata import MetadataStore

HERE = Path(__file__).parent


def calls(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("parallel", [1, 3])
def test_a_gate_stops_the_run_locally(
    stores_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: int
) -> None:
    log = tmp_path / "calls"
    monkeypatch.setenv("ZB_TEST_CALLS", str(log))
    run = run_pipeline(pipes.gated, {"share": 0.6}, parallel=parallel, run_id=f"g{parallel}")
    assert run.status == "stopped"
    assert run.reason == "step 'gate' stopped the pipeline: drift share 0.6 > 0.3"
    status = {name: s.status for name, s in run.steps.items()}
    assert status == {
        "measure": "completed",
        "gate": "stopped",
        "deploy": "skipped",
        "announce": "skipped",
        "side": "completed",  # not downstream of the gate: it runs
    }
    assert sorted(calls(log)) == ["gate", "measure", "side"]  # once: a stop is not retried
    assert run.steps["gate"].error == "drift share 0.6 > 0.3"
    report = run.steps["gate"].outputs["report"]
    assert report.load() == HTML("<h1>drift share 0.6</h1>")
    assert set(run.steps["gate"].outputs) == {"report"}  # only the outputs given
    assert report.visualizations() == {"page.html": b"<h1>drift share 0.6</h1>"}
    # The same, read back from the store.
    again = load_run(f"g{parallel}")
    assert (again.status, again.reason) == (run.status, run.reason)
    assert {n: s.status for n, s in again.steps.items()} == status
    assert again.steps["deploy"].error.startswith("skipped: step 'gate' stopped the pipeline")


def test_a_stopped_step_is_no_cache_entry(
    stores_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls"
    monkeypatch.setenv("ZB_TEST_CALLS", str(log))
    run_pipeline(pipes.gated, {"share": 0.6}, run_id="first")
    second = run_pipeline(pipes.gated, {"share": 0.6}, run_id="second")
    assert second.steps["measure"].status == "cached"
    assert second.steps["gate"].status == "stopped"  # decided again, not served from cache
    assert calls(log).count("gate") == 2
    passed = run_pipeline(pipes.gated, {"share": 0.1}, run_id="third")
    assert passed.status == "completed"
    assert {s.status for s in passed.steps.values()} <= {"completed", "cached"}


def test_stop_outputs_of_a_single_output_step(stores_env: dict[str, str]) -> None:
    run = run_pipeline(pipes.single, run_id="single")
    assert run.status == "stopped"
    assert run.steps["single_gate"].outputs["output"].load() == "<p>only</p>"
    assert run.steps["read_page"].status == "skipped"


def test_stop_with_an_unknown_output_name_fails_the_step(stores_env: dict[str, str]) -> None:
    run = run_pipeline(pipes.bad, run_id="bad", raise_on_failure=False)
    assert run.status == "failed"
    assert "outputs ['c'], which it does not declare. Its outputs: a, b" in str(
        run.steps["bad_gate"].error
    )


def test_cli_run_prints_the_reason_and_runs_show_shows_it(
    stores_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**stores_env, "PYTHONPATH": str(HERE)}
    cmd = [sys.executable, "-m", "zenml_bridge", "run", f"{HERE / 'zb_gate_pipes.py'}:gated"]
    proc = subprocess.run(
        [*cmd, "--run-id", "cli-stop"], capture_output=True, text=True, env=_env(env)
    )
    assert proc.returncode == 0, proc.stderr
    assert "gate                     stopped" in proc.stdout
    assert "Stopped: step 'gate' stopped the pipeline: drift share 0.6 > 0.3" in proc.stdout
    show = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "runs", "show", "cli-stop"],
        capture_output=True, text=True, env=_env(env),
    )  # fmt: skip
    assert show.returncode == 0, show.stderr
    assert "Status     stopped" in show.stdout
    assert "gate stopped the pipeline: drift share 0.6 > 0.3" in show.stdout
    assert "skipped" in show.stdout


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


def test_entrypoint_exits_99_and_records_the_stop(
    stores_env: dict[str, str], tmp_path: Path
) -> None:
    pipeline_ir = pipes.gated.to_ir()
    path = tmp_path / "gated.json"
    path.write_text(ir.dumps(pipeline_ir))
    sha = ir.sha256(pipeline_ir)
    env = _env({**stores_env, "PYTHONPATH": str(HERE)})

    def step(name: str, attempt: str = "1", run_id: str = "ep") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "zenml_bridge.entrypoint", "run-step", "--ir", str(path),
             "--ir-sha256", sha, "--step", name, "--run-id", run_id, "--attempt", attempt],
            capture_output=True, text=True, env=env,
        )  # fmt: skip

    assert step("measure").returncode == 0
    stopped = step("gate")
    assert stopped.returncode == STOP_EXIT_CODE == 99, stopped.stderr
    assert "stopped the pipeline: drift share 0.6 > 0.3" in stopped.stderr
    assert step("side").returncode == 0  # an independent step still runs (as on Airflow)
    store = MetadataStore(stores_env["ZENML_BRIDGE_METADATA_URL"])
    run_row = store.get_run("ep")
    assert run_row is not None
    assert run_row["status"] == "stopped"
    states = {name: row["status"] for name, row in store.step_runs("ep").items()}
    assert states == {
        "measure": "completed",
        "gate": "stopped",
        "deploy": "skipped",
        "announce": "skipped",
        "side": "completed",
    }
    assert store.step_runs("ep")["gate"]["outputs"]["report"]["materializer"] == "zenml_bridge.html"


def test_artifacts_show_lists_opens_and_writes_visualizations(
    stores_env: dict[str, str], tmp_path: Path
) -> None:
    run = run_pipeline(pipes.gated, {"share": 0.6}, run_id="viz")
    art = run.steps["gate"].outputs["report"].artifact_id
    env = _env({**stores_env, "PYTHONPATH": str(HERE)})

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "zenml_bridge", "artifacts", "show", art, *args],
            capture_output=True, text=True, env={**env, **extra},
        )  # fmt: skip

    shown = cli()
    assert shown.returncode == 0, shown.stderr
    size = len(b"<h1>drift share 0.6</h1>")
    assert f"Visualization page.html  (text/html, {size} bytes)" in shown.stdout
    out = tmp_path / "report.html"
    written = cli("--out", str(out))
    assert written.returncode == 0, written.stderr
    assert out.read_bytes() == b"<h1>drift share 0.6</h1>"
    # A browser: $BROWSER names a command that records the URL it is given.
    seen = tmp_path / "seen"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {seen}\n')
    browser.chmod(0o755)
    opened = cli("--open", BROWSER=str(browser))
    assert opened.returncode == 0, opened.stderr
    url = seen.read_text().strip()
    assert url.startswith("file://") and url.endswith("/page.html")
    assert Path(url[len("file://") :]).read_bytes() == b"<h1>drift share 0.6</h1>"
    assert "Opened        page.html in the browser" in opened.stdout
    # No browser: the path is printed instead.
    headless = cli("--open", "page.html", BROWSER="false", DISPLAY="", WAYLAND_DISPLAY="")
    assert headless.returncode == 0, headless.stderr
    assert "No browser available; the visualization is at " in headless.stdout
    # Unknown name: one clear message, exit 2, no traceback.
    wrong = cli("--open", "pgae.html")
    assert wrong.returncode == 2
    assert "has no visualization 'pgae.html'. Did you mean 'page.html'?" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    none = run.steps["measure"].outputs["output"].artifact_id
    bare = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "artifacts", "show", none, "--out", "x.html"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert bare.returncode == 2
    assert "has no visualizations" in bare.stderr
    assert not (tmp_path / "x.html").exists()


def test_a_tampered_visualization_is_refused(stores_env: dict[str, str]) -> None:
    run = run_pipeline(pipes.gated, {"share": 0.6}, run_id="tamper")
    report = run.steps["gate"].outputs["report"]
    page = Path(report.uri) / "visualizations" / "page.html"
    page.write_bytes(b"<script>evil()</script>")
    with pytest.raises(BridgeError, match="is corrupted: its content sha256"):
        report.visualizations()


def test_the_airflow_template_skips_on_the_stop_exit_code() -> None:
    import zenml_bridge

    template = Path(zenml_bridge.__file__).parent / "templates" / "airflow" / "dag.py.tmpl"
    text = template.read_text(encoding="utf-8")
    assert f"\nSTOP_EXIT_CODE = {STOP_EXIT_CODE}\n" in text
    assert '"skip_on_exit_code": STOP_EXIT_CODE,' in text


def test_a_new_try_of_a_stopped_gate_reopens_the_run(
    stores_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Airflow Clear of the gate (try 2) after the condition changed: the run goes on."""
    pipeline_ir = pipes.gated.to_ir()
    path = tmp_path / "gated.json"
    path.write_text(ir.dumps(pipeline_ir))
    flag = tmp_path / "share"
    env = _env({**stores_env, "PYTHONPATH": str(HERE), "ZB_GATE_SHARE_FILE": str(flag)})

    def step(name: str, attempt: str = "1") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "zenml_bridge.entrypoint", "run-step", "--ir", str(path),
             "--ir-sha256", ir.sha256(pipeline_ir), "--step", name, "--run-id", "clear",
             "--attempt", attempt],
            capture_output=True, text=True, env=env,
        )  # fmt: skip

    assert step("measure").returncode == 0
    flag.write_text("0.6")
    assert step("gate").returncode == STOP_EXIT_CODE
    store = MetadataStore(stores_env["ZENML_BRIDGE_METADATA_URL"])
    assert (store.get_run("clear") or {})["status"] == "stopped"
    flag.write_text("0.1")  # the world changed: the gate passes on the next try
    again = step("gate", attempt="2")
    assert again.returncode == 0, again.stderr
    assert (store.get_run("clear") or {})["status"] == "running"
    for name in ("deploy", "announce", "side"):
        assert step(name).returncode == 0, name
    run_row = store.get_run("clear")
    assert run_row is not None and (run_row["status"], run_row["reason"]) == ("completed", None)
