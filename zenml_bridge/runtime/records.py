"""What a run returns: the run record, its step records and their output artifacts.

Example:
    >>> run = training(rows=500)                                # doctest: +SKIP
    >>> run.status, run.steps["train"].outputs["model"].load()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zenml_bridge.errors import BridgeError, did_you_mean


class _Named(dict):  # type: ignore[type-arg]
    """A dict whose missing keys raise a BridgeError with "did you mean"."""

    kind = "item"
    owner = ""

    def __missing__(self, key: str) -> Any:
        raise BridgeError(
            f"{self.owner} has no {self.kind} '{key}'."
            + did_you_mean(str(key), list(self))
            + f" Available: {', '.join(self) or 'none'}."
        )


def _named(items: Mapping[str, Any], kind: str, owner: str) -> dict[str, Any]:
    named = _Named(items)
    named.kind = kind
    named.owner = owner
    return named


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactRecord:
    """One stored artifact; :meth:`load` reads it back (verifying its content hash)."""

    artifact_id: str
    uri: str
    sha256: str
    materializer: str
    materializer_version: str
    type_name: str = ""
    artifact_store: Any = field(default=None, repr=False, compare=False)

    def load(self) -> Any:
        """The value, read by the materializer that wrote it.

        Raises:
            BridgeError: the artifact is missing or its content hash differs (corrupted).
        """
        from zenml_bridge.materializers.registry import get
        from zenml_bridge.stores.artifacts import ArtifactStore

        store = self.artifact_store or ArtifactStore(self.uri)
        return store.read(self.uri, self.sha256, get(self.materializer).load)

    def visualizations(self) -> dict[str, bytes]:
        """The artifact's visualizations, file name -> bytes (``{}`` when it has none).

        Read from ``<artifact folder>/visualizations/`` after the artifact's content hash is
        verified (the visualizations are part of it). The media type follows the extension:
        ``zenml_bridge.materializers.visualizations.media_type(name)``.

        Raises:
            BridgeError: the artifact is missing or its content hash differs (corrupted).
        """
        from zenml_bridge.materializers.visualizations import FOLDER
        from zenml_bridge.stores.artifacts import ArtifactStore

        store = self.artifact_store or ArtifactStore(self.uri)
        prefix = f"{FOLDER}/"
        files = store.read_files(self.uri, self.sha256)
        return {
            rel[len(prefix) :]: data
            for rel, data in sorted(files.items())
            if rel.startswith(prefix) and "/" not in rel[len(prefix) :]
        }

    @classmethod
    def from_info(cls, info: Mapping[str, Any], store: Any = None) -> ArtifactRecord:
        return cls(
            artifact_id=info["id"],
            uri=info["uri"],
            sha256=info["sha256"],
            materializer=info["materializer"],
            materializer_version=str(info["version"]),
            type_name=info.get("type", ""),
            artifact_store=store,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    """One step of a run: status (completed, cached, failed, stopped, skipped), duration and
    outputs; ``error`` is the traceback of a failed step, the reason of a stopped or skipped one.
    """

    name: str
    status: str
    duration_s: float | None = None
    outputs: Mapping[str, ArtifactRecord] = field(default_factory=dict)
    cache_key: str | None = None
    error: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """A pipeline run: ``run.steps[name].outputs[out].load()`` gives a step's output value."""

    run_id: str
    pipeline: str
    status: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    ir_sha256: str = ""
    steps: Mapping[str, StepRecord] = field(default_factory=dict)
    git_sha: str | None = None
    git_dirty: bool | None = None
    links: Mapping[str, str] = field(default_factory=dict)
    #: Why the run ended as it did (``stopped``: which step stopped it and why).
    reason: str | None = None
    #: The metadata store the run is recorded in (for :attr:`metrics` and :attr:`metadata`).
    store: Any = field(default=None, repr=False, compare=False)

    @property
    def metrics(self) -> dict[str, float]:
        """What steps logged on the run with ``log_run_metric`` (read from the store)."""
        return self._values()["metrics"]

    @property
    def metadata(self) -> dict[str, Any]:
        """What steps logged on the run with ``log_run_metadata`` (read from the store)."""
        return self._values()["metadata"]

    def _values(self) -> dict[str, dict[str, Any]]:
        if self.store is None:
            return {"metrics": {}, "metadata": {}}
        from zenml_bridge.stores.run_values import run_values

        return run_values(self.store, self.run_id)

    @property
    def failed_steps(self) -> list[StepRecord]:
        return [s for s in self.steps.values() if s.status == "failed"]


def step_record(name: str, row: Mapping[str, Any], store: Any = None) -> StepRecord:
    outputs = {k: ArtifactRecord.from_info(v, store) for k, v in row["outputs"].items()}
    return StepRecord(
        name=name,
        status=row["status"],
        duration_s=row["ended_at"] - row["started_at"],
        outputs=_named(outputs, "output", f"Step '{name}'"),
        cache_key=row.get("cache_key"),
        error=row.get("error"),
        metadata=row.get("metadata") or {},
        metrics=row.get("metrics") or {},
    )


def load_run(ref: str, settings: Any = None) -> RunRecord:
    """A run from the metadata store by id, unique prefix or ``latest``.

    Example:
        >>> load_run("latest").steps["train"].outputs["model"].load()   # doctest: +SKIP
    """
    from zenml_bridge.config import load_settings
    from zenml_bridge.runtime.stack import open_stack

    stack = open_stack(settings or load_settings())
    row = stack.metadata.resolve_run(ref)
    steps = {
        name: step_record(name, step_row, stack.artifacts)
        for name, step_row in sorted(
            stack.metadata.step_runs(row["run_id"]).items(), key=lambda kv: kv[1]["started_at"]
        )
    }
    return RunRecord(
        run_id=row["run_id"],
        pipeline=row["pipeline"],
        status=row["status"],
        parameters=row["parameters"],
        ir_sha256=row["ir_sha256"],
        steps=_named(steps, "step", f"Run {row['run_id']}"),
        git_sha=row["git_sha"],
        git_dirty=row["git_dirty"],
        links=row["links"],
        reason=row.get("reason"),
        store=stack.metadata,
    )
