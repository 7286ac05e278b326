"""A tiny experiment tracker for the conformance suite, installed as a real distribution.

``install(site)`` writes a module and its ``.dist-info`` (entry point
``zenml_bridge.flavors: experiment_tracker.jsonl``) into ``site``; with ``site`` on the path of
every process (this one, Airflow's tasks, kfp.local's), each backend finds the flavor through
the plugin table. The tracker appends one JSON line per call to the file its ``path`` option
names; the stack config gives it as ``${ZB_CONFORMANCE_TRACKS}``, resolved on the worker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ENV = "ZB_CONFORMANCE_TRACKS"
BLOCK = {"flavor": "jsonl", "path": "${" + ENV + "}"}

MODULE = """
import json

from zenml_bridge.runtime.tracking import ExperimentTracker


class JsonlTracker(ExperimentTracker):
    flavor = "jsonl"

    def _write(self, **event):
        with open(self.config["path"], "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event, sort_keys=True) + "\\n")

    def on_run_start(self, run):
        self._write(event="run_start", pipeline=run.pipeline)
        return {}

    def on_step_start(self, run, step):
        self._write(event="step_start", step=step.name)

    def log_metrics(self, run, step, metrics):
        self._write(event="metrics", step=step.name, values=dict(metrics))

    def on_step_end(self, run, step, status):
        self._write(event="step_end", step=step.name, status=status)

    def on_run_end(self, run, status):
        self._write(event="run_end", status=status)
"""


def install(site: Path) -> Path:
    dist = site / "zb_conformance_tracker-0.1.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (site / "zb_conformance_tracker.py").write_text(MODULE, encoding="utf-8")
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: zb-conformance-tracker\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        "[zenml_bridge.flavors]\nexperiment_tracker.jsonl = zb_conformance_tracker:JsonlTracker\n",
        encoding="utf-8",
    )
    return site


def project_config(folder: Path) -> None:
    """A project config whose stack has the tracker (stores come from the environment)."""
    (folder / ".zenml_bridge").mkdir(parents=True, exist_ok=True)
    config = {
        "version": 1,
        "active_stack": "default",
        "stacks": {"default": {"components": {"experiment_tracker": BLOCK}}},
    }
    (folder / ".zenml_bridge" / "config.yaml").write_text(json.dumps(config), encoding="utf-8")


def records(path: Path) -> set[tuple[Any, ...]]:
    """The tracker's calls as a set: a step process calls ``on_run_start`` for its run, so a
    run on Airflow or Kubeflow starts its tracker run once per step (the same run)."""
    if not path.exists():
        return set()
    found: set[tuple[Any, ...]] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        values = tuple(sorted(event.get("values", {}).items()))
        found.add((event["event"], event.get("step"), event.get("status"), values))
    return found
