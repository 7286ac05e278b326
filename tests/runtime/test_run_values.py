"""Run-level metrics and metadata (issue 12): log_run_metric / log_run_metadata from steps,
recorded on the run (also for cache hits and entrypoint runs), shown by `runs show` and
`runs compare`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import zb_stack_pipes

from zenml_bridge import BridgeError, ir
from zenml_bridge.cli.main import main
from zenml_bridge.runtime import load_run, run_pipeline

HERE = Path(__file__).parent


def test_steps_record_values_on_the_run(stores_env: dict[str, str]) -> None:
    run = run_pipeline(zb_stack_pipes.scored, {"rows": 4})
    assert run.metrics == {"score": 0.6, "seen": 4.0}
    assert run.metadata == {"dataset": "2026-11", "rows": 4}
    assert load_run(run.run_id).metrics == {"score": 0.6, "seen": 4.0}
    # A cache hit records what the producing step logged, on the new run.
    again = run_pipeline(zb_stack_pipes.scored, {"rows": 4})
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert again.metrics == run.metrics and again.metadata == run.metadata


def test_bad_value_fails_the_step_with_a_clear_message(stores_env: dict[str, str]) -> None:
    with pytest.raises(
        BridgeError,
        match=re.escape("log_run_metric('score', ...) in step 'bad_value' needs a number, got str"),
    ):
        run_pipeline(zb_stack_pipes.badly_scored)


def test_runs_show_and_compare(
    stores_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    first = run_pipeline(zb_stack_pipes.scored, {"rows": 4})
    second = run_pipeline(zb_stack_pipes.scored, {"rows": 5})
    capsys.readouterr()
    assert main(["runs", "show", first.run_id]) == 0
    out = capsys.readouterr().out
    assert "Metric     score = 0.6\n" in out and "Metric     seen = 4.0\n" in out
    assert 'Metadata   dataset = "2026-11"\n' in out and "Metadata   rows = 4\n" in out
    assert main(["runs", "show", first.run_id, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["run_values"]["metrics"] == {"score": 0.6, "seen": 4.0}
    assert main(["runs", "compare", first.run_id, second.run_id]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["(run).score", "0.6", "1.0", "differs"] in rows
    assert ["(run).dataset", '"2026-11"', '"2026-11"'] in rows  # run metadata: JSON cells
    assert ["(run).rows", "4", "5", "differs"] in rows


def test_values_from_entrypoint_processes(tmp_path: Path, stores_env: dict[str, str]) -> None:
    pipeline_ir = zb_stack_pipes.scored.to_ir()
    path = tmp_path / "scored.json"
    path.write_text(ir.dumps(pipeline_ir))
    env = {**stores_env, "PYTHONPATH": str(HERE)}
    import os

    env = {**os.environ, **env}
    for step in ("prepare", "evaluate"):
        done = subprocess.run(
            [sys.executable, "-m", "zenml_bridge.entrypoint", "run-step", "--ir", str(path),
             "--ir-sha256", ir.sha256(pipeline_ir), "--step", step, "--run-id", "ep-values"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    run = load_run("ep-values")
    assert run.metrics == {"score": 0.3, "seen": 3.0}
    assert run.metadata == {"dataset": "2026-11", "rows": 3}
