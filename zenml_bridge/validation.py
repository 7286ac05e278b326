"""What validation steps share: the report they return, its materializer, and the gate.

The Great Expectations and Evidently integrations (separate distributions) return a
:class:`ValidationReport`: the library's own result as JSON plus its HTML page, stored as
``report.json`` with ``report.html`` as the artifact's visualization (open it with
``zenml-bridge artifacts show ID --open``). :func:`gate` turns a failed check into what the
step was told to do: stop the pipeline, fail the step, or warn and go on.

Nothing heavy is imported here (no pandas): :func:`check_frame` looks at types by name.

Example:
    >>> report = ValidationReport(kind="example", title="Check", passed=False,
    ...                           summary={"failed": ["x"]}, result={}, html="<p>x</p>")
    >>> report.passed, report.summary["failed"]
    (False, ['x'])
"""

from __future__ import annotations

import enum
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from zenml_bridge.dsl import Step
from zenml_bridge.dsl.trace import Invocation, ParameterRef, StepOutput, active_trace
from zenml_bridge.errors import BridgeError, StopPipeline, did_you_mean
from zenml_bridge.materializers.base import Materializer, join, prepare

__all__ = [
    "ON_FAILURE",
    "ValidationFailed",
    "ValidationReport",
    "ValidationReportMaterializer",
    "ValidationStep",
    "check_choice",
    "check_component_options",
    "check_frame",
    "current_step_name",
    "gate",
    "plain_json",
    "resolve_options",
    "stack_validator",
]

log = logging.getLogger("zenml_bridge.validation")

#: What a gate does when the data fails: stop the run, fail the step, or warn and go on.
ON_FAILURE = ("stop", "fail", "warn")


class ValidationFailed(BridgeError):
    """A validation step with ``on_failure="fail"`` found bad data: the step fails."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationReport:
    """A validation or drift report: the library's result as JSON and its page as HTML.

    Attributes:
        kind: which check made it, e.g. ``"great_expectations.validation"``.
        title: the page's title, also shown in listings.
        passed: whether the data passed the check.
        summary: the few facts a gate message quotes (failed expectations, drifted columns).
        result: the library's full result, JSON-able (GX validation result, Evidently snapshot).
        html: a self-contained page of the result.
    """

    kind: str
    title: str
    passed: bool
    summary: Mapping[str, Any] = field(default_factory=dict)
    result: Mapping[str, Any] = field(default_factory=dict)
    html: str = ""

    def to_json(self) -> dict[str, Any]:
        """Everything but the page, as stored in ``report.json``."""
        return {
            "kind": self.kind,
            "title": self.title,
            "passed": self.passed,
            "summary": dict(self.summary),
            "result": dict(self.result),
        }


class ValidationReportMaterializer(Materializer):
    """Stores a :class:`ValidationReport` as ``report.json`` + ``report.html``.

    The page is also the artifact's visualization (``visualizations/report.html``).
    """

    name: ClassVar[str] = "validation.report"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = ("zenml_bridge.validation.ValidationReport",)

    def save(self, value: Any, folder: str, fs: Any) -> None:
        prepare(folder, fs)
        with fs.open(join(folder, "report.json"), "w") as f:
            json.dump(plain_json(value.to_json()), f, sort_keys=True, allow_nan=False)
        with fs.open(join(folder, "report.html"), "w", encoding="utf-8") as f:
            f.write(value.html)

    def load(self, folder: str, fs: Any) -> ValidationReport:
        with fs.open(join(folder, "report.json"), "r") as f:
            data = json.load(f)
        with fs.open(join(folder, "report.html"), "r", encoding="utf-8") as f:
            html = f.read()
        return ValidationReport(
            kind=data["kind"],
            title=data["title"],
            passed=bool(data["passed"]),
            summary=data.get("summary", {}),
            result=data.get("result", {}),
            html=html,
        )

    def visualizations(self, value: Any) -> Mapping[str, str | bytes]:
        return {"report.html": value.html}


#: ``prepare(step name, literal arguments) -> arguments to use instead`` (see ValidationStep).
Prepare = Callable[[str, dict[str, Any]], dict[str, Any]]


class ValidationStep(Step[Any, Any]):
    """A step whose literal arguments are checked, and normalized, when the pipeline is built.

    ``prepare`` gets the arguments that are literals (not step outputs or pipeline parameters)
    and returns replacements: a suite file becomes its content, an unknown preset name is
    refused before the run (``zenml-bridge run`` / ``compile`` exit 2). Outside a pipeline the
    function is called as it is.

    Example:
        >>> def upper(step, literals):
        ...     return {k: v.upper() for k, v in literals.items() if isinstance(v, str)}
        >>> def shout(text: str) -> str:
        ...     return text
        >>> ValidationStep(shout, prepare=upper)("hi")  # outside a pipeline: the plain function
        'hi'
    """

    def __init__(
        self,
        func: Callable[..., Any],
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        prepare: Prepare | None = None,
    ) -> None:
        super().__init__(func, name, options or {})
        self.prepare = prepare

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if active_trace() is not None and self.prepare is not None:
            after = kwargs.pop("after", None)
            bound = self.signature.bind_partial(*args, **kwargs)
            literals = {
                key: value
                for key, value in bound.arguments.items()
                if not isinstance(value, StepOutput | ParameterRef | Invocation)
            }
            bound.arguments.update(self.prepare(self.name, literals))
            args, kwargs = tuple(bound.args), dict(bound.kwargs)
            if after is not None:
                kwargs["after"] = after
        return super().__call__(*args, **kwargs)

    def with_settings(self, **blocks: Mapping[str, Any]) -> ValidationStep:
        """The same step with ``@step(settings=...)`` blocks, e.g. ``great_expectations={...}``.

        Example:
            >>> def check(x: int) -> int:
            ...     return x
            >>> strict = ValidationStep(check).with_settings(evidently={"threshold": 0.1})
            >>> strict.options
            {'settings': {'evidently': {'threshold': 0.1}}}
        """
        settings = {**self.options.get("settings", {}), **{k: dict(v) for k, v in blocks.items()}}
        return ValidationStep(
            self.func, self.name, {**self.options, "settings": settings}, prepare=self.prepare
        )


def check_choice(step: str, option: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` when it is one of ``allowed``, else a BridgeError naming step and option."""
    if value not in allowed:
        raise BridgeError(
            f"Step '{step}': {option}={value!r} is not one of "
            + ", ".join(repr(a) for a in allowed)
            + "."
            + did_you_mean(str(value), allowed)
        )
    return str(value)


def check_component_options(
    flavor: str,
    config: Mapping[str, Any],
    options: tuple[str, ...],
    choices: Mapping[str, tuple[Any, ...]],
    extra: list[str] | None = None,
) -> None:
    """Every problem of a ``data_validator`` block in one BridgeError: unknown keys (with
    did-you-mean), values outside ``choices``, and ``extra`` problems the flavor found.

    Example:
        >>> check_component_options("x", {"on_failur": "stop"}, ("on_failure",), {})
        Traceback (most recent call last):
        ...
        zenml_bridge.ir.errors.BridgeError: The data_validator component (flavor x): unknown option 'on_failur' (Did you mean 'on_failure'?). Its options are: on_failure.
    """  # noqa: E501
    problems = []
    for key in sorted(set(config) - set(options)):
        hint = did_you_mean(key, options).strip()
        problems.append(f"unknown option {key!r}" + (f" ({hint})" if hint else ""))
    for key, allowed in choices.items():
        if key in config and config[key] not in allowed:
            problems.append(f"{key}={config[key]!r} is not one of {', '.join(map(str, allowed))}")
    problems.extend(extra or [])
    if problems:
        raise BridgeError(
            f"The data_validator component (flavor {flavor}): "
            + "; ".join(problems)
            + f". Its options are: {', '.join(options)}."
        )


def check_frame(step: str, argument: str, value: Any) -> Any:
    """``value`` when it is a non-empty pandas DataFrame, else a BridgeError saying so.

    Example:
        >>> check_frame("gx_validate", "df", [1, 2])
        Traceback (most recent call last):
        ...
        zenml_bridge.ir.errors.BridgeError: Step 'gx_validate': input 'df' must be a pandas DataFrame, got list. Pass the DataFrame a step returned (or pd.DataFrame(...)).
    """  # noqa: E501
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(value).__mro__}
    if not names & {"pandas.core.frame.DataFrame", "pandas.DataFrame"}:
        raise BridgeError(
            f"Step '{step}': input '{argument}' must be a pandas DataFrame, got "
            f"{type(value).__name__}. Pass the DataFrame a step returned (or pd.DataFrame(...))."
        )
    if len(value.columns) == 0 or len(value) == 0:
        shape = f"{len(value)} rows x {len(value.columns)} columns"
        raise BridgeError(
            f"Step '{step}': input '{argument}' is an empty DataFrame ({shape}); there is "
            "nothing to validate. Check the step that produced it."
        )
    return value


def gate(step: str, on_failure: str, report: ValidationReport, reason: str, outputs: Any) -> None:
    """Act on a failed check; nothing happens when ``report.passed``.

    Args:
        step: the step's name, for messages.
        on_failure: ``"stop"`` raises :class:`~zenml_bridge.StopPipeline` (the run ends
            ``stopped``, the outputs are kept, downstream steps are skipped); ``"fail"`` raises
            :class:`ValidationFailed` (the step fails); ``"warn"`` logs a warning and records
            ``validation_failed`` and ``validation_reason`` in the step's metadata.
        report: the report of the check.
        reason: what failed, e.g. ``"2 of 9 expectations failed: ..."``.
        outputs: the step's outputs as :class:`~zenml_bridge.StopPipeline` takes them.
    """
    if report.passed:
        _record({"validation_failed": False})
        return
    message = f"Step '{step}': {reason}"
    if on_failure == "stop":
        raise StopPipeline(message, outputs=outputs)
    if on_failure == "fail":
        raise ValidationFailed(
            message + ". The report is in the step's logs; use on_failure='stop' to keep it as "
            "an artifact, or 'warn' to go on."
        )
    log.warning("%s (on_failure='warn': the pipeline goes on)", message)
    _record({"validation_failed": True, "validation_reason": reason})


def current_step_name(default: str) -> str:
    """The running step's name (``gx_validate_2`` when called twice), else ``default``."""
    from zenml_bridge.runtime.context import _CURRENT

    context = _CURRENT.get()
    return context.step_name if context is not None else default


def stack_validator(flavor: str) -> Any:
    """The running step's stack ``data_validator`` when it is of ``flavor``, else None."""
    from zenml_bridge.runtime.context import _CURRENT

    context = _CURRENT.get()
    stack = getattr(context, "_stack", None) if context is not None else None
    if stack is None or "data_validator" not in stack.settings.component_configs():
        return None
    component = context.component("data_validator")  # type: ignore[union-attr]
    return component if getattr(component, "flavor", None) == flavor else None


def resolve_options(
    given: Mapping[str, Any], defaults: Mapping[str, Any], settings_cls: Any, flavor: str
) -> dict[str, Any]:
    """Each option from the step's argument, else its settings block, else the stack's
    ``data_validator`` of ``flavor``, else ``defaults``.

    Example:
        >>> resolve_options({"on_failure": None}, {"on_failure": "stop"}, None, "evidently")
        {'on_failure': 'stop'}
    """
    from zenml_bridge.runtime.context import _CURRENT

    context = _CURRENT.get()
    settings = (
        context.settings(settings_cls) if context is not None and settings_cls is not None else None
    )
    validator = stack_validator(flavor)
    resolved: dict[str, Any] = {}
    for key, value in given.items():
        if value is None and settings is not None:
            value = getattr(settings, key, None)
        if value is None and validator is not None:
            value = validator.config.get(key)
        resolved[key] = defaults[key] if value is None else value
    return resolved


def plain_json(value: Any) -> Any:
    """``value`` as plain JSON data: NaN and infinities become None, other objects ``str``.

    Example:
        >>> plain_json({"share": float("nan"), "n": [1, 2.5], "t": (1,)})
        {'share': None, 'n': [1, 2.5], 't': [1]}
    """
    if isinstance(value, enum.Enum):
        return plain_json(value.value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_json(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return plain_json(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _record(values: Mapping[str, Any]) -> None:
    """Step metadata when a step runs (a direct call outside a pipeline has no context)."""
    from zenml_bridge.runtime.context import _CURRENT

    context = _CURRENT.get()
    if context is not None:
        context.log_metadata(values)
