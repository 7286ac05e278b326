"""Experiment trackers found by entry point, called by the runtime, with on_error fail|skip."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import zb_pipes

from zenml_bridge.config import RunConfig
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import load_run, run_pipeline

TRACKER = textwrap.dedent(
    """
    import json
    from zenml_bridge.runtime.tracking import ExperimentTracker

    class RecordingTracker(ExperimentTracker):
        flavor = "recording"

        def _log(self, *event):
            with open(self.config["path"], "a") as handle:
                handle.write(json.dumps(event, default=str) + "\\n")

        def on_run_start(self, run):
            self._log("run_start", run.run_id, dict(run.links))
            return {"recording.run": "rec-" + run.run_id}

        def on_step_start(self, run, step):
            self._log("step_start", step.name)

        def log_metrics(self, run, step, metrics):
            self._log("metrics", step.name, dict(metrics))

        def log_metadata(self, run, step, metadata):
            self._log("metadata", step.name, dict(metadata))

        def on_step_end(self, run, step, status):
            self._log("step_end", step.name, status, sorted(step.outputs))

        def on_run_end(self, run, status):
            self._log("run_end", status, dict(run.links))

    class BrokenTracker(ExperimentTracker):
        flavor = "broken"

        def on_step_start(self, run, step):
            raise ConnectionError("tracking server at 127.0.0.1:1 refused the connection")
    """
)


@pytest.fixture
def trackers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install two tracker flavors through a real entry-point distribution on sys.path."""
    site = tmp_path / "site"
    dist = site / "zb_test_trackers-0.1.dist-info"
    dist.mkdir(parents=True)
    (site / "zb_test_trackers.py").write_text(TRACKER)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zb-test-trackers\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[zenml_bridge.experiment_trackers]\n"
        "recording = zb_test_trackers:RecordingTracker\n"
        "broken = zb_test_trackers:BrokenTracker\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return tmp_path / "events.jsonl"


def test_tracker_sees_run_steps_metrics_and_links(
    trackers: Path, stores_env: dict[str, str]
) -> None:
    config = RunConfig(experiment_tracker={"flavor": "recording", "path": str(trackers)})
    run = run_pipeline(zb_pipes.chain, {"rows": 3}, config=config)
    events = [json.loads(line) for line in trackers.read_text().splitlines()]
    kinds = [e[0] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert ["metrics", "load", {"rows": 3.0}] in events
    assert ["metadata", "total", {"n": 3}] in events
    assert ["step_end", "total", "completed", ["sum"]] in events
    assert events[-1] == ["run_end", "completed", {"recording.run": f"rec-{run.run_id}"}]
    assert load_run(run.run_id).links == {"recording.run": f"rec-{run.run_id}"}


def test_tracker_failure_fails_the_run_by_default(
    trackers: Path, stores_env: dict[str, str]
) -> None:
    config = RunConfig(experiment_tracker={"flavor": "broken"})
    with pytest.raises(
        BridgeError, match="The experiment tracker 'broken' failed in on_step_start"
    ):
        run_pipeline(zb_pipes.chain, {"rows": 3}, config=config)
    assert load_run("latest").status == "failed"


def test_tracker_failure_is_skipped_when_configured(
    trackers: Path, stores_env: dict[str, str]
) -> None:
    config = RunConfig(experiment_tracker={"flavor": "broken", "on_error": "skip"})
    run = run_pipeline(zb_pipes.chain, {"rows": 3}, config=config)
    assert run.status == "completed"
    assert "refused the connection" in load_run(run.run_id).links["tracking.skipped"]


def test_unknown_flavor(trackers: Path, stores_env: dict[str, str]) -> None:
    config = RunConfig(experiment_tracker={"flavor": "recordin"})
    with pytest.raises(BridgeError, match="Did you mean 'recording'?"):
        run_pipeline(zb_pipes.chain, {"rows": 3}, config=config)


def test_tracker_failure_after_the_step_fails_the_step(
    trackers: Path, stores_env: dict[str, str], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    (site / "zb_late_tracker.py").write_text(
        "from zenml_bridge.runtime.tracking import ExperimentTracker\n\n"
        "class LateTracker(ExperimentTracker):\n"
        "    def on_step_end(self, run, step, status):\n"
        "        raise ConnectionError('gone')\n"
    )
    entry = site / "zb_test_trackers-0.1.dist-info" / "entry_points.txt"
    entry.write_text(entry.read_text() + "late = zb_late_tracker:LateTracker\n")
    config = RunConfig(experiment_tracker={"flavor": "late"})
    with pytest.raises(BridgeError, match="failed in on_step_end: gone"):
        run_pipeline(zb_pipes.heads, {"rows": 3}, config=config)
    run = load_run("latest")
    assert run.status == "failed"
    assert run.steps["load"].status == "failed"
    assert run.steps["load"].outputs["output"].load() == [0, 1, 2]  # our records came first
