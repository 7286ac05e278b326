"""The stores and tracker of a run, opened once per process and reused by later runs."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zenml_bridge.config import Settings
from zenml_bridge.errors import BridgeError, did_you_mean
from zenml_bridge.redact import redact_text
from zenml_bridge.runtime.tracking import ExperimentTracker
from zenml_bridge.stores.artifacts import ArtifactStore
from zenml_bridge.stores.metadata import MetadataStore, check_writable

TRACKER_GROUP = "zenml_bridge.experiment_trackers"


@dataclass
class Tracker:
    """An experiment tracker with the stack's ``on_error`` policy (``fail`` or ``skip``)."""

    tracker: ExperimentTracker
    on_error: str = "fail"
    skipped: list[str] = field(default_factory=list)

    def call(self, method: str, *args: Any) -> Any:
        """Call a tracker method; on error raise (``fail``) or note it and go on (``skip``)."""
        try:
            return getattr(self.tracker, method)(*args)
        except Exception as exc:
            if self.on_error != "skip":
                if isinstance(exc, BridgeError):
                    raise
                raise BridgeError(
                    f"The experiment tracker '{self.tracker.flavor}' failed in {method}: {exc}. "
                    "Fix the tracker's backend, or set `on_error: skip` in the stack's "
                    "experiment_tracker to run without it."
                ) from exc
            note = f"{method}: {exc}"
            if not self.skipped:
                print(
                    f"warning: experiment tracking skipped ({redact_text(note)}); the run goes on",
                    file=sys.stderr,
                )
            self.skipped.append(note)
            return None


def load_tracker(config: Mapping[str, Any] | None, home: Any = None) -> Tracker | None:
    """The tracker a stack config names (``{flavor: NAME, on_error: fail|skip, ...}``).

    The tracker also gets ``home`` (the ``.zenml_bridge/`` folder of the settings) for its
    defaults, e.g. the MLflow tracker's ``sqlite:///`` database beside ``metadata.db``.
    """
    if not config:
        return None
    options = dict(config)
    if home is not None:
        options.setdefault("home", str(home))
    flavor = str(options.pop("flavor", ""))
    on_error = str(options.pop("on_error", "fail"))
    if on_error not in ("fail", "skip"):
        raise BridgeError(
            f"experiment_tracker on_error is {on_error!r}; use 'fail' (default) or 'skip'."
        )
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=TRACKER_GROUP)}
    if flavor not in found:
        known = ", ".join(sorted(found)) or "none installed"
        raise BridgeError(
            f"There is no experiment tracker flavor {flavor!r}."
            + did_you_mean(flavor, found)
            + f" Installed flavors: {known}. Install the integration that provides it "
            f"(e.g. pip install zenml-bridge-{flavor or 'mlflow'})."
        )
    cls = found[flavor].load()
    return Tracker(cls(**options), on_error)


@dataclass
class Stack:
    """The metadata store, artifact store and tracker of the active settings."""

    settings: Settings
    metadata: MetadataStore
    artifacts: ArtifactStore
    tracker: Tracker | None


_STACKS: dict[str, Stack] = {}


def open_stack(settings: Settings) -> Stack:
    """Open (or reuse) the stores of ``settings``; checks the artifact root is writable."""
    key = json.dumps(
        [settings.metadata_url, settings.artifact_root, settings.experiment_tracker],
        sort_keys=True,
        default=str,
    )
    stack = _STACKS.get(key)
    if stack is None:
        artifacts = ArtifactStore(settings.artifact_root)
        artifacts.check_writable()
        check_writable(settings.metadata_url)  # a read-only SQLite file: a message, not a trace
        metadata = MetadataStore(settings.metadata_url)
        tracker = load_tracker(settings.experiment_tracker, settings.home)
        stack = Stack(settings, metadata, artifacts, tracker)
        _STACKS[key] = stack
    return stack
