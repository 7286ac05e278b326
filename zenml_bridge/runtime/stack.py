"""The stores and tracker of a run, opened once per process and reused by later runs."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zenml_bridge.components import (
    StackComponent,
    build_component,
    component_class,
    resolve_references,
)
from zenml_bridge.config import Settings
from zenml_bridge.errors import BridgeError
from zenml_bridge.redact import redact_text
from zenml_bridge.runtime.tracking import ExperimentTracker
from zenml_bridge.stores.artifacts import ArtifactStore
from zenml_bridge.stores.metadata import MetadataStore, check_writable


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
    cls = component_class("experiment_tracker", flavor)
    options = resolve_references(options, "experiment_tracker")
    tracker: ExperimentTracker = cls(**options)  # type: ignore[assignment]
    return Tracker(tracker, on_error)


@dataclass
class Stack:
    """The metadata store, artifact store, tracker and other components of the settings."""

    settings: Settings
    metadata: MetadataStore
    artifacts: ArtifactStore
    tracker: Tracker | None
    _components: dict[str, StackComponent] = field(default_factory=dict, repr=False)

    def component(self, kind: str) -> StackComponent:
        """The stack's component of ``kind``, built on first use and then reused.

        Raises:
            BridgeError: the stack has no component of that kind (naming how to add one).
        """
        if kind == "experiment_tracker" and self.tracker is not None:
            return self.tracker.tracker  # type: ignore[no-any-return]
        found = self._components.get(kind)
        if found is not None:
            return found
        config = self.settings.component_configs().get(kind)
        if not config:
            configured = sorted(self.settings.component_configs())
            raise BridgeError(
                f"The stack '{self.settings.stack}' has no {kind} component"
                + (f" (it has: {', '.join(configured)})" if configured else "")
                + f". Add one to the stack in .zenml_bridge/config.yaml: `components: "
                f"{{{kind}: {{flavor: NAME, ...}}}}` (see `zenml-bridge integration list` for "
                "installed flavors)."
            )
        component = build_component(kind, config)
        self._components[kind] = component
        return component


_STACKS: dict[str, Stack] = {}


def open_stack(settings: Settings) -> Stack:
    """Open (or reuse) the stores of ``settings``; checks the artifact root is writable."""
    key = json.dumps(
        [settings.metadata_url, settings.artifact_root, settings.component_configs()],
        sort_keys=True,
        default=str,
    )
    stack = _STACKS.get(key)
    if stack is None:
        artifacts = ArtifactStore(settings.artifact_root)
        artifacts.check_writable()
        check_writable(settings.metadata_url)  # a read-only SQLite file: a message, not a trace
        metadata = MetadataStore(settings.metadata_url)
        tracker = load_tracker(
            settings.component_configs().get("experiment_tracker"), settings.home
        )
        stack = Stack(settings, metadata, artifacts, tracker)
        _STACKS[key] = stack
    return stack
