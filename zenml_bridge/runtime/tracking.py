"""Experiment trackers: plugins told about runs, steps and metrics (MLflow is one).

The runtime calls a tracker at fixed points. On Airflow and Kubeflow every step runs in its own
process, so :meth:`ExperimentTracker.on_run_start` is called by each process that runs a step
of the run and must find-or-create (idempotent by ``run.run_id``). Trackers are configured in the
stack config (``components: {experiment_tracker: {flavor: mlflow, ...}}``, or the older
``experiment_tracker: {...}``) and found in the plugin table as ``experiment_tracker.<flavor>``
(entry-point group ``zenml_bridge.flavors``; the old group ``zenml_bridge.experiment_trackers``
still works).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from zenml_bridge.components import StackComponent


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    """What a tracker learns about a pipeline run."""

    run_id: str
    pipeline: str
    parameters: Mapping[str, Any]
    ir_sha256: str
    git_sha: str | None = None
    git_dirty: bool | None = None
    backend: str = "local"
    #: Links recorded earlier by trackers (e.g. ``{"mlflow.run_id": "..."}``), read back from
    #: the metadata store so every step process of a run joins the same tracker run.
    links: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepInfo:
    """What a tracker learns about one step run."""

    name: str
    parameters: Mapping[str, Any]
    cached: bool = False
    duration_s: float | None = None
    #: output name -> (artifact URI, sha256 content hash)
    outputs: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)


class ExperimentTracker(StackComponent):
    """Base class of trackers, the stack component of kind ``experiment_tracker``.

    Every method may be left as is (does nothing).

    A tracker that cannot reach its backend raises :class:`zenml_bridge.BridgeError` with a
    message naming the backend and how to fix it; the runtime then fails the step (our own
    metadata is recorded first), unless the stack config sets ``on_error: skip``, in which case
    the runtime records that tracking was skipped and goes on.
    """

    kind: ClassVar[str] = "experiment_tracker"

    def on_run_start(self, run: RunInfo) -> Mapping[str, str]:
        """Find or create the tracker's run; return links to store on our run record."""
        return {}

    def on_step_start(self, run: RunInfo, step: StepInfo) -> None:
        """Called before a step function runs (not for cache hits)."""

    def log_metrics(self, run: RunInfo, step: StepInfo, metrics: Mapping[str, float]) -> None:
        """Metrics a step logged with ``get_step_context().log_metric(...)``."""

    def log_metadata(self, run: RunInfo, step: StepInfo, metadata: Mapping[str, Any]) -> None:
        """Metadata a step logged with ``get_step_context().log_metadata(...)``."""

    def log_run_values(
        self,
        run: RunInfo,
        step: StepInfo,
        metrics: Mapping[str, float],
        metadata: Mapping[str, Any],
    ) -> None:
        """What a step recorded on the whole run with ``log_run_metric`` / ``log_run_metadata``
        (called at the end of that step, before :meth:`on_step_end`)."""

    def on_step_end(self, run: RunInfo, step: StepInfo, status: str) -> None:
        """Called after a step: ``status`` is ``completed``, ``cached`` or ``failed``."""

    def on_run_end(self, run: RunInfo, status: str) -> None:
        """Called once when the run is finished: ``completed`` or ``failed``."""
