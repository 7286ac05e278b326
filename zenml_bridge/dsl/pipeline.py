"""``@pipeline``: a function whose body wires steps; tracing it gives the pipeline IR."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

from zenml_bridge import ir
from zenml_bridge.dsl.parameters import declared_parameter, parameter_descriptions
from zenml_bridge.dsl.step import (
    STEP_OPTIONS,
    description_of,
    source_of,
    unknown_option_error,
)
from zenml_bridge.dsl.trace import (
    ParameterRef,
    active_trace,
    display_path,
    tracing,
    user_location,
)
from zenml_bridge.dsl.types import EMPTY, resolved_hints, type_name
from zenml_bridge.settings import StepSettingsError, check_blocks

P = ParamSpec("P")
R = TypeVar("R")

#: Where running a pipeline is handed over. A string, resolved when a pipeline is first run,
#: keeps the DSL free of runtime imports (see the import contracts in pyproject.toml).
RUNNER = "zenml_bridge.runtime:run_pipeline"


class Pipeline:
    """A pipeline definition. Call it with parameters to run it; :meth:`to_ir` to compile it."""

    def __init__(
        self,
        func: Callable[..., Any],
        name: str | None,
        schedule: str | None,
        settings: Mapping[str, Mapping[str, Any]] | None,
        step_defaults: Mapping[str, Any],
    ) -> None:
        unknown = sorted(set(step_defaults) - set(STEP_OPTIONS))
        if unknown:
            raise unknown_option_error("@pipeline", unknown, ("name", "schedule", *STEP_OPTIONS))
        self.func = func
        self.name = name or func.__name__
        self.schedule = schedule
        self.settings = {k: dict(v) for k, v in (settings or {}).items()}
        self.step_defaults = dict(step_defaults)
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<pipeline {self.name} ({self.func.__module__}.{self.func.__qualname__})>"

    def __call__(self, **parameters: Any) -> Any:
        """Run the pipeline on the active stack (local by default); returns the run record.

        Keyword options understood by the runner (``cache``, ``parallel``, ...) are documented on
        :func:`zenml_bridge.runtime.run_pipeline`; every other keyword is a pipeline parameter.

        Raises:
            BridgeError: called inside another pipeline's body (nothing is run or recorded).
        """
        outer = active_trace()
        if outer is not None:
            # Running it here would record a whole run while the outer one is only traced.
            raise ir.BridgeError(
                f"Pipeline '{self.name}' is called inside the body of pipeline "
                f"'{outer.pipeline_name}' ({user_location(2)}); pipelines cannot call pipelines. "
                f"Call the steps of '{self.name}' in '{outer.pipeline_name}' directly (a plain "
                "function that calls steps can be shared by both), or run the pipelines one "
                "after the other."
            )
        module_name, attr = RUNNER.split(":")
        run_pipeline = getattr(importlib.import_module(module_name), attr)
        return run_pipeline(self, parameters)

    def _parameters(self) -> tuple[list[ir.Parameter], dict[str, ParameterRef]]:
        hints = resolved_hints(self.func)
        location = (
            f"{display_path(self.func.__code__.co_filename)}:{self.func.__code__.co_firstlineno}"
        )
        parameters, refs = [], {}
        descriptions = parameter_descriptions(self.func)
        for p in inspect.signature(self.func).parameters.values():
            p = declared_parameter(p, descriptions)
            if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise ir.BridgeError(
                    f"Pipeline '{self.name}' takes {'*' if p.kind is p.VAR_POSITIONAL else '**'}"
                    f"{p.name} ({location}); pipeline parameters must be named. Declare each one."
                )
            annotation = hints.get(p.name, p.annotation)
            problem = (
                None
                if p.default is EMPTY
                else ir.json_problem(
                    f"The default of parameter '{p.name}' of pipeline '{self.name}' ({location})",
                    p.default,
                )
            )
            if problem:
                raise ir.BridgeError(problem)
            parameters.append(
                ir.Parameter(
                    name=p.name,
                    type=type_name(annotation),
                    default=None if p.default is EMPTY else p.default,
                    required=p.default is EMPTY,
                    description=descriptions.get(p.name, ""),
                )
            )
            refs[p.name] = ParameterRef(p.name, annotation)
        return parameters, refs

    @functools.cached_property
    def _ir(self) -> ir.Pipeline:
        code = self.func.__code__
        problem = ir.name_problem(
            "Pipeline",
            self.name,
            f"{display_path(code.co_filename)}:{code.co_firstlineno}",
            "Rename the function or pass @pipeline(name=...).",
        )
        if problem:
            raise ir.BridgeError(problem)
        parameters, refs = self._parameters()
        with tracing(self.name, self.step_defaults) as trace:
            self.func(**refs)
        source, source_file, source_line = source_of(self.func)
        pipeline = ir.Pipeline(
            name=self.name,
            source=source,
            source_file=source_file,
            source_line=source_line,
            description=description_of(self.func),
            parameters=tuple(parameters),
            schedule=self.schedule,
            defaults={k: _json_option(v) for k, v in sorted(self.step_defaults.items())},
            steps=tuple(trace.steps),
            settings=self.settings,
        )
        location = f"{display_path(self.func.__code__.co_filename)}:{source_line}"
        try:
            validated = ir.validate(pipeline)
        except ir.IRValidationError as exc:
            raise ir.IRValidationError(
                [f"{problem} (pipeline '{self.name}', {location})" for problem in exc.problems]
            ) from None
        # Invalid integration settings stop the trace; unknown blocks are warned about by
        # compile and run (where --strict decides).
        errors, _ = check_blocks((step.name, step.settings) for step in validated.steps)
        if errors:
            raise StepSettingsError(
                [f"{message} (pipeline '{self.name}', {location})" for _, _, message in errors]
            )
        return validated

    def to_ir(self) -> ir.Pipeline:
        """Trace the pipeline body once and return its validated IR.

        Raises:
            BridgeError: the pipeline is broken; the message names the step or input, the
                problem, the fix and the user's file:line.

        Example:
            >>> training.to_ir().step_names  # doctest: +SKIP
            ('load', 'split', 'train')
        """
        return self._ir


def _json_option(value: Any) -> Any:
    if callable(value):
        return f"{value.__module__}:{value.__qualname__}"
    return value


@overload
def pipeline(func: Callable[P, R], /) -> Pipeline: ...


@overload
def pipeline(
    *,
    name: str | None = None,
    schedule: str | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    **step_defaults: Any,
) -> Callable[[Callable[P, R]], Pipeline]: ...


def pipeline(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    schedule: str | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    **step_defaults: Any,
) -> Any:
    """Make a function a pipeline: its body calls steps and passes their outputs along.

    Works bare (``@pipeline``) and with options: ``schedule`` (cron or ``@daily``-style preset),
    per-target ``settings``, and any ``@step`` option as a default for all steps
    (``@pipeline(retries=1, image="repo/img:tag")``). The function's own arguments are the
    pipeline's parameters; their defaults must be JSON values.

    Example:
        >>> @pipeline
        ... def training(rows: int = 1000) -> None:
        ...     train(load(rows=rows))     # doctest: +SKIP
    """

    def wrap(f: Callable[..., Any]) -> Pipeline:
        return Pipeline(f, name, schedule, settings, step_defaults)

    return wrap(func) if func is not None else wrap
