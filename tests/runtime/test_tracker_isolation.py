"""A tracker outage is never the user's step failure (issue 9, item 7)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import zb_states_pipes as pipes

from zenml_bridge.config import RunConfig
from zenml_bridge.runtime import RunFailed, load_run, run_pipeline

TRACKERS = textwrap.dedent(
    """
    import os
    from zenml_bridge.runtime.tracking import ExperimentTracker

    class OutageTracker(ExperimentTracker):
        '''Refuses connections while the file config["outage"] exists; the first refusal
        ends the outage (the next attempt works).'''
        flavor = "outage"

        def _check(self, step):
            if step.name == "tracked" and os.path.exists(self.config["outage"]):
                os.unlink(self.config["outage"])
                raise ConnectionError("tracking server refused the connection")

        def on_step_start(self, run, step):
            self._check(step)

    class EndOutageTracker(ExperimentTracker):
        flavor = "end_outage"

        def on_step_end(self, run, step, status):
            if step.name == "buggy":
                raise ConnectionError("tracking server went away")
    """
)


@pytest.fixture
def trackers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    dist = site / "zb_outage_trackers-0.1.dist-info"
    dist.mkdir(parents=True)
    (site / "zb_outage_trackers.py").write_text(TRACKERS)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: zb-outage-trackers\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[zenml_bridge.experiment_trackers]\n"
        "outage = zb_outage_trackers:OutageTracker\n"
        "end_outage = zb_outage_trackers:EndOutageTracker\n"
    )
    monkeypatch.syspath_prepend(str(site))
    hook = tmp_path / "hook.txt"
    monkeypatch.setenv("ZB_STATES_HOOK", str(hook))
    return hook


def test_tracker_outage_at_step_start_is_retried_and_not_given_to_on_failure(
    trackers: Path, stores_env: dict[str, str], tmp_path: Path
) -> None:
    outage = tmp_path / "outage"
    outage.write_text("")
    config = RunConfig(experiment_tracker={"flavor": "outage", "outage": str(outage)})
    run = run_pipeline(pipes.tracked_pipe, config=config)
    assert run.status == "completed"
    assert run.steps["tracked"].status == "completed"
    assert load_run(run.run_id).steps["tracked"].outputs["output"].load() == 3
    assert not outage.exists()  # the outage happened (and ended)
    assert not trackers.exists()  # on_failure never saw the tracker's error


def test_tracker_failure_at_step_end_never_hides_the_users_error(
    trackers: Path, stores_env: dict[str, str]
) -> None:
    config = RunConfig(experiment_tracker={"flavor": "end_outage"})
    with pytest.raises(RunFailed) as failed:
        run_pipeline(pipes.buggy_pipe, config=config)
    assert "ValueError: a bug in the user's step" in str(failed.value)
    assert trackers.read_text() == 'ValueError("a bug in the user\'s step")\n'
    record = load_run(failed.value.run.run_id)
    assert record.status == "failed"
    assert "ValueError: a bug in the user's step" in str(record.steps["buggy"].error)
