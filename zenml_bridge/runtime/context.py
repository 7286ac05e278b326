"""The step context: what a running step knows about its run, and how it logs metadata.

Example:
    >>> from zenml_bridge import get_step_context, step
    >>> @step
    ... def train(rows: int) -> float:
    ...     context = get_step_context()
    ...     context.log_metric("accuracy", 0.93)
    ...     context.log_metadata({"rows": rows})
    ...     return 0.93
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from zenml_bridge.errors import BridgeError

if TYPE_CHECKING:
    from zenml_bridge.components import StackComponent
    from zenml_bridge.settings import StepSettings

    S = TypeVar("S", bound=StepSettings)


class StepContext:
    """The run id, step name and pipeline name of the running step, plus its logged values.

    What a step logs is recorded with the step run in the metadata store (in the same
    transaction as its outputs) and handed to the experiment tracker when one is configured.
    """

    __slots__ = (
        "_parsed",
        "_stack",
        "metadata",
        "metrics",
        "parameters",
        "pipeline_name",
        "run_id",
        "run_values",
        "step_name",
        "step_settings",
    )

    def __init__(
        self,
        run_id: str,
        step_name: str,
        pipeline_name: str,
        parameters: Mapping[str, Any],
        *,
        stack: Any = None,
        step_settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.run_id = run_id
        self.step_name = step_name
        self.pipeline_name = pipeline_name
        self.parameters = dict(parameters)
        self.metadata: dict[str, Any] = {}
        self.metrics: dict[str, float] = {}
        #: The step's settings blocks as written (``@step(settings={key: {...}})``).
        self.step_settings: dict[str, Any] = dict(step_settings or {})
        self._stack = stack  # runtime.stack.Stack: has .component(kind)
        self._parsed: dict[type, Any] = {}
        #: What this step logged on the run: ``{"metric": {...}, "metadata": {...}}`` (kept
        #: with the step's cache entry, so a cache hit records them on its run too).
        self.run_values: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"<StepContext run={self.run_id} step={self.step_name}>"

    def component(self, kind: str) -> StackComponent:
        """The stack's component of ``kind`` (e.g. ``"experiment_tracker"``), ready to use.

        Raises:
            BridgeError: the stack has no such component; the message says how to add one.

        Example:
            >>> tracker = get_step_context().component("experiment_tracker")  # doctest: +SKIP
        """
        if self._stack is None:
            raise BridgeError(
                f"Step '{self.step_name}' asked for the {kind} component, but this step runs "
                "without a stack. Run it through a pipeline."
            )
        component: StackComponent = self._stack.component(kind)
        return component

    def settings(self, cls: type[S]) -> S:
        """The step's ``cls.key`` settings block, parsed and validated (defaults when absent).

        Example:
            >>> options = get_step_context().settings(MLflowStepSettings)  # doctest: +SKIP
        """
        parsed = self._parsed.get(cls)
        if parsed is None:
            parsed = cls.parse(self.step_settings.get(cls.key), step=self.step_name)
            self._parsed[cls] = parsed
        result: S = parsed
        return result

    def log_metadata(self, values: Mapping[str, Any]) -> None:
        """Record JSON-able key/values for this step run (later calls update earlier ones)."""
        if not isinstance(values, Mapping):
            raise BridgeError(
                f"log_metadata() in step '{self.step_name}' takes a dict, not "
                f"{type(values).__name__}. Call it as log_metadata({{'key': value}})."
            )
        self.metadata.update({str(key): value for key, value in values.items()})

    def log_metric(self, key: str, value: float) -> None:
        """Record a numeric metric for this step run."""
        self.metrics[str(key)] = self._number("log_metric", key, value)

    def log_run_metric(self, key: str, value: float) -> None:
        """Record a numeric metric on the run (any step may; a later value replaces it)."""
        self._log_run("metric", {str(key): self._number("log_run_metric", key, value)})

    def log_run_metadata(self, values: Mapping[str, Any]) -> None:
        """Record JSON-able key/values on the run (later calls update earlier ones)."""
        if not isinstance(values, Mapping):
            raise BridgeError(
                f"log_run_metadata() in step '{self.step_name}' takes a dict, not "
                f"{type(values).__name__}. Call it as log_run_metadata({{'key': value}})."
            )
        import json

        try:
            json.dumps(dict(values))
        except (TypeError, ValueError) as exc:
            raise BridgeError(
                f"log_run_metadata() in step '{self.step_name}': the values are not JSON-able "
                f"({exc}). Log numbers, text, lists and dicts of them."
            ) from None
        self._log_run("metadata", {str(key): value for key, value in values.items()})

    def _log_run(self, kind: str, values: dict[str, Any]) -> None:
        if self._stack is None:
            raise BridgeError(
                f"Step '{self.step_name}' logged a run value without a metadata store. Run it "
                "through a pipeline."
            )
        from zenml_bridge.stores.run_values import log_values

        log_values(self._stack.metadata, self.run_id, kind, values, step=self.step_name)
        self.run_values.setdefault(kind, {}).update(values)

    def _number(self, function: str, key: str, value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BridgeError(
                f"{function}({key!r}, ...) in step '{self.step_name}' needs a number, got "
                f"{type(value).__name__}. Pass an int or float."
            ) from None
        if not math.isfinite(number):
            raise BridgeError(
                f"{function}({key!r}, {value!r}) in step '{self.step_name}': the value is not a "
                "finite number. Log finite values only."
            )
        return number


_CURRENT: ContextVar[StepContext | None] = ContextVar("zenml_bridge_step", default=None)


def get_step_context() -> StepContext:
    """The context of the step that is running now.

    Raises:
        BridgeError: when called outside a running step (e.g. calling a step function directly).

    Example:
        >>> get_step_context().run_id   # doctest: +SKIP
        'training-20261122-070100-3f2a1c'
    """
    context = _CURRENT.get()
    if context is None:
        raise BridgeError(
            "get_step_context() was called outside a running step. It works only while a "
            "pipeline runs the step (a step function called directly has no run)."
        )
    return context


def log_run_metric(key: str, value: float) -> None:
    """Record a metric on the whole run from inside a step (shown by ``runs show``/``compare``).

    Example:
        >>> from zenml_bridge import log_run_metric, step
        >>> @step
        ... def evaluate() -> None:
        ...     log_run_metric("auc", 0.91)
    """
    get_step_context().log_run_metric(key, value)


def log_run_metadata(values: Mapping[str, Any]) -> None:
    """Record JSON-able metadata on the whole run from inside a step.

    Example:
        >>> from zenml_bridge import log_run_metadata, step
        >>> @step
        ... def load() -> None:
        ...     log_run_metadata({"dataset": "2026-11"})
    """
    get_step_context().log_run_metadata(values)


@contextmanager
def step_context(context: StepContext) -> Iterator[StepContext]:
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)
