"""THE behaviour table of the conformance suite: what each pipeline must do on every backend.

A runner per backend (local, Airflow ``dags test``, Kubeflow ``kfp.local``) runs a case and
returns an :class:`Outcome` read back from that backend's stores; the tests compare it with the
row here, and its artifact content hashes with a local run of the same case.

Steps absent from ``steps`` are never recorded (a step after a failure is not started on any
backend). A stopped pipeline's steps downstream of the gate are recorded ``skipped`` everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
PIPES = HERE / "zb_conformance_pipes.py"


@dataclass(frozen=True)
class Case:
    """One row: a pipeline of zb_conformance_pipes, its run parameters and what must happen."""

    pipeline: str
    params: dict[str, Any]
    run_status: str
    steps: dict[str, str]
    #: ``step.output`` -> the loaded value.
    values: dict[str, Any] = field(default_factory=dict)
    #: ``step.output`` -> names of its visualizations.
    visualizations: dict[str, set[str]] = field(default_factory=dict)
    #: step -> metrics recorded for it.
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    #: step -> text its recorded error (failure) or reason (stop, skip) contains.
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.pipeline


DONE = "completed"
STOP = "step 'gate' stopped the pipeline: drift share 0.6 > 0.3"

CASES: tuple[Case, ...] = (
    Case(
        "data_edges",
        {"rows": 6},
        DONE,
        {"load": DONE, "double": DONE, "total": DONE},
        values={"load.output": [0, 3, 6, 2, 5, 1], "total.output": 34},
    ),
    Case(
        "multi_output",
        {},
        DONE,
        {"load": DONE, "split": DONE, "count": DONE, "count_2": DONE},
        values={"split.low": [0, 3, 2, 1], "split.high": [6, 5], "count_2.output": 2},
    ),
    Case(
        "fan_in",
        {},
        DONE,
        {"constant": DONE, "constant_2": DONE, "constant_3": DONE, "join": DONE},
        values={"join.output": {"a": 1, "b": 20, "c": 300, "sum": 321}},
    ),
    Case(
        "parameters",
        {"label": 'it\'s "q" {{ ds }}', "scale": 2.5, "tags": ["x", "y"]},
        DONE,
        {"describe": DONE},
        values={
            "describe.output": {"label": 'it\'s "q" {{ ds }}', "scale": 2.5, "tags": ["x", "y"]}
        },
    ),
    Case(
        "failing",
        {},
        "failed",
        {"prepare": DONE, "explode": "failed"},
        values={"prepare.output": 41},
        errors={"explode": "conformance: explode fails on purpose at 41"},
    ),
    Case(
        "gated",
        {"share": 0.6},
        "stopped",
        {"measure": DONE, "gate": "stopped", "promote": "skipped", "announce": "skipped"},
        values={"gate.report": "<h1>drift share 0.6 (limit 0.3)</h1>"},
        visualizations={"gate.report": {"page.html"}},
        errors={"gate": "drift share 0.6 > 0.3", "promote": STOP, "announce": STOP},
    ),
    Case(
        "tracked",
        {"rows": 9},
        DONE,
        {"train": DONE},
        values={"train.output": 0.9},
        metrics={"train": {"accuracy": 0.9, "rows": 9}},
    ),
    Case(
        "html_report",
        {"rows": 3},
        DONE,
        {"load": DONE, "render": DONE},
        values={"render.output": "<table><tr><td>0</td><td>3</td><td>6</td></tr></table>"},
        visualizations={"render.output": {"page.html"}},
    ),
)


@dataclass
class Outcome:
    """What a backend did, read from its metadata and artifact stores."""

    run_status: str
    run_reason: str | None
    steps: dict[str, str]
    hashes: dict[str, str]
    values: dict[str, Any]
    visualizations: dict[str, set[str]]
    metrics: dict[str, dict[str, float]]
    errors: dict[str, str]
    #: The test tracker's calls (tracker_site.records), filled in by the runner.
    tracked: set[tuple[Any, ...]] = field(default_factory=set)


def read_outcome(metadata_url: str, artifact_root: str) -> Outcome:
    """The one run recorded in these stores, as an :class:`Outcome`."""
    from zenml_bridge.runtime.records import ArtifactRecord
    from zenml_bridge.stores.artifacts import ArtifactStore
    from zenml_bridge.stores.metadata import MetadataStore

    store = MetadataStore(metadata_url)
    (run,) = store.list_runs()
    rows = store.step_runs(run["run_id"])
    artifacts = ArtifactStore(artifact_root)
    hashes, values, pages = {}, {}, {}
    for name, row in rows.items():
        for output, info in row["outputs"].items():
            record = ArtifactRecord.from_info(info, artifacts)
            hashes[f"{name}.{output}"] = info["sha256"]
            values[f"{name}.{output}"] = record.load()
            found = set(record.visualizations())
            if found:
                pages[f"{name}.{output}"] = found
    return Outcome(
        run_status=run["status"],
        run_reason=run.get("reason"),
        steps={name: row["status"] for name, row in rows.items()},
        hashes=hashes,
        values=values,
        visualizations=pages,
        metrics={name: dict(row["metrics"]) for name, row in rows.items() if row["metrics"]},
        errors={name: row["error"] or "" for name, row in rows.items()},
    )


def check(case: Case, outcome: Outcome, reference: Outcome | None = None) -> None:
    """Assert the outcome matches the row (and the reference run's content hashes)."""
    assert (outcome.run_status, outcome.steps) == (case.run_status, case.steps)
    for key, value in case.values.items():
        assert outcome.values[key] == value, key
    assert outcome.visualizations == case.visualizations
    assert outcome.metrics == case.metrics
    for step, text in case.errors.items():
        assert text in outcome.errors[step], (step, outcome.errors[step])
    if case.run_status == "stopped":
        assert outcome.run_reason == STOP
    # Every run is tracked: the tracker saw it end as our store says, and a step's metrics.
    assert ("run_end", None, case.run_status, ()) in outcome.tracked, outcome.tracked
    for step, metrics in case.metrics.items():
        assert ("metrics", step, None, tuple(sorted(metrics.items()))) in outcome.tracked
    if reference is not None:
        assert outcome.hashes == reference.hashes
        assert outcome.tracked == reference.tracked
