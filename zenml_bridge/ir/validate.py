"""Small named validation checks over a pipeline IR.

Each check returns a list of problems (messages that name the object, the problem and the fix);
:func:`validate` runs them all and raises one :class:`IRValidationError` listing every problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from zenml_bridge.ir.errors import IRValidationError, did_you_mean
from zenml_bridge.ir.model import JSON, Parameter, Pipeline, Step

NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
MAX_NAME_LENGTH = 63
NAME_RULE = (
    "names must start with an ASCII letter and contain only ASCII letters, digits and '_' "
    f"(at most {MAX_NAME_LENGTH} characters), so that they map to Airflow ids and Kubernetes names"
)


def k8s_name(name: str) -> str:
    """The Kubernetes (DNS-1123 label) form of a valid name: ``make_frame`` -> ``make-frame``."""
    return name.lower().replace("_", "-").strip("-")


def name_problem(kind: str, name: str, where: str = "", fix: str = "Rename it.") -> str | None:
    """Why ``name`` cannot name a pipeline or step, or None when it can."""
    if NAME_PATTERN.fullmatch(name) and len(name) <= MAX_NAME_LENGTH and k8s_name(name):
        return None
    location = f" ({where})" if where else ""
    return f"{kind} name {name!r} cannot be used{location}: {NAME_RULE}. {fix}"


def json_problem(what: str, value: Any) -> str | None:
    """Why ``value`` is not plain JSON data, or None when it is."""
    bad = _first_non_json(value)
    if bad is None:
        return None
    return (
        f"{what} is {bad}, which is not JSON-serializable. Use None, bool, int, float, str, "
        "or lists and dicts of them; build richer objects inside a step."
    )


def _first_non_json(value: Any) -> str | None:
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple):
        for item in value:
            bad = _first_non_json(item)
            if bad:
                return bad
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"a dict with the non-string key {key!r}"
            bad = _first_non_json(item)
            if bad:
                return bad
        return None
    return f"a {type(value).__module__}.{type(value).__qualname__} ({value!r:.60})"


def check_has_steps(pipeline: Pipeline) -> list[str]:
    if pipeline.steps:
        return []
    return [
        f"Pipeline '{pipeline.name}' calls no step. Call at least one @step function in its body."
    ]


def check_names(pipeline: Pipeline) -> list[str]:
    problems = [name_problem("Pipeline", pipeline.name)]
    problems += [name_problem("Step", step.name) for step in pipeline.steps]
    mapped: dict[str, str] = {}
    for step in pipeline.steps:
        key = k8s_name(step.name)
        if key in mapped and mapped[key] != step.name:
            problems.append(
                f"Steps '{mapped[key]}' and '{step.name}' both map to the Kubernetes name "
                f"'{key}'. Rename one of them."
            )
        mapped.setdefault(key, step.name)
    return [p for p in problems if p]


def check_unique_steps(pipeline: Pipeline) -> list[str]:
    seen: set[str] = set()
    problems = []
    for step in pipeline.steps:
        if step.name in seen:
            problems.append(f"Step name '{step.name}' is used twice. Step names must be unique.")
        seen.add(step.name)
    return problems


def check_outputs(pipeline: Pipeline) -> list[str]:
    problems = []
    for step in pipeline.steps:
        names = [output.name for output in step.outputs]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(
                f"Step '{step.name}' declares the output '{name}' twice. "
                "Give each Annotated[T, 'name'] of the return type a distinct name."
            )
        for name in names:
            if not NAME_PATTERN.fullmatch(name):
                problems.append(
                    f"Step '{step.name}' output name {name!r} cannot be used: output names "
                    "must start with an ASCII letter and contain only ASCII letters, digits and "
                    "'_'. Rename it in the Annotated[...] of the return type."
                )
    return problems


def check_references(pipeline: Pipeline) -> list[str]:
    steps = {step.name: step for step in pipeline.steps}
    parameters = {p.name for p in pipeline.parameters}
    problems = []
    for step in pipeline.steps:
        for ref in step.inputs:
            where = f"Step '{step.name}' input '{ref.name}'"
            if ref.kind == "parameter" and ref.parameter not in parameters:
                problems.append(
                    f"{where} uses the unknown pipeline parameter '{ref.parameter}'."
                    + did_you_mean(str(ref.parameter), parameters)
                )
            elif ref.kind == "output":
                upstream = steps.get(str(ref.step))
                if upstream is None:
                    problems.append(
                        f"{where} reads from the unknown step '{ref.step}'."
                        + did_you_mean(str(ref.step), steps)
                    )
                elif ref.output not in {o.name for o in upstream.outputs}:
                    problems.append(
                        f"{where} reads the unknown output '{ref.step}.{ref.output}'."
                        + did_you_mean(str(ref.output), [o.name for o in upstream.outputs])
                    )
            elif ref.kind == "constant":
                problem = json_problem(f"{where} (a constant)", ref.value)
                if problem:
                    problems.append(problem)
        for name in step.after:
            if name not in steps:
                problems.append(
                    f"Step '{step.name}' runs after the unknown step '{name}'."
                    + did_you_mean(name, steps)
                )
    return problems


def check_parameters(pipeline: Pipeline) -> list[str]:
    problems = []
    for parameter in pipeline.parameters:
        problem = json_problem(
            f"The default of parameter '{parameter.name}' of pipeline '{pipeline.name}'",
            parameter.default,
        )
        if problem:
            problems.append(problem)
    return problems


def check_acyclic(pipeline: Pipeline) -> list[str]:
    try:
        topological_order(pipeline.steps)
    except ValueError as exc:
        return [str(exc)]
    return []


CHECKS: tuple[Callable[[Pipeline], list[str]], ...] = (
    check_has_steps,
    check_names,
    check_unique_steps,
    check_outputs,
    check_parameters,
    check_references,
    check_acyclic,
)


def validate(pipeline: Pipeline) -> Pipeline:
    """Run every check; raise one :class:`IRValidationError` listing all problems."""
    problems = [problem for check in CHECKS for problem in check(pipeline)]
    if problems:
        raise IRValidationError(problems)
    return pipeline


def topological_order(steps: Iterable[Step]) -> tuple[Step, ...]:
    """Steps ordered so that each comes after its upstream steps; ties keep the given order.

    Steps come in rounds: first those with no upstream step, then those whose upstream steps
    are all in earlier rounds, and so on; within a round in the given order. Linear in steps
    plus edges (Kahn's algorithm, counting each step's round as it goes).

    Raises:
        ValueError: the steps depend on each other in a cycle (the message names every step
            that cannot be ordered).
    """
    by_name = {step.name: step for step in steps}
    waiting: dict[str, int] = {}  # name -> number of distinct upstream steps not yet ordered
    downstream: dict[str, list[str]] = {}
    for name, step in by_name.items():
        ups = {u for u in step.upstream if u in by_name}
        waiting[name] = len(ups)
        for up in ups:
            downstream.setdefault(up, []).append(name)
    depth = dict.fromkeys(by_name, 0)
    ready = [name for name, count in waiting.items() if count == 0]
    ordered: list[str] = []
    while ready:
        name = ready.pop()
        ordered.append(name)
        for down in downstream.get(name, ()):
            depth[down] = max(depth[down], depth[name] + 1)
            waiting[down] -= 1
            if waiting[down] == 0:
                ready.append(down)
    if len(ordered) < len(by_name):
        cycle = ", ".join(sorted(set(by_name) - set(ordered)))
        raise ValueError(
            f"The steps {cycle} depend on each other in a cycle. Remove an edge or an after=."
        )
    rounds: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in by_name:  # the given order within each round
        rounds[depth[name]].append(name)
    return tuple(by_name[name] for names in rounds for name in names)


_SIMPLE_TYPES: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list | tuple),
    "dict": lambda v: isinstance(v, dict),
    "None": lambda v: v is None,
}


def type_problem(pipeline: str, parameter: Parameter, value: Any) -> str | None:
    """Why ``value`` does not fit the parameter's annotation, or None when it does.

    Only the simple JSON types (and unions and generics of them) are checked; any other
    annotation accepts every JSON value.
    """
    options = [option.strip() for option in parameter.type.split(" | ")]
    checks = [_SIMPLE_TYPES.get(option.split("[", 1)[0]) for option in options]
    if any(check is None or check(value) for check in checks):
        return None
    hint = (
        f" For text that looks like a number or JSON, quote it: -p {parameter.name}='\"{value}\"'."
        if "str" in options
        else ""
    )
    return (
        f"Parameter '{parameter.name}' of pipeline '{pipeline}' expects {parameter.type}, got "
        f"{value!r} ({type(value).__name__}). Pass a value of type {parameter.type}, e.g. "
        f"-p {parameter.name}=VALUE (VALUE is read as JSON).{hint}"
    )


def check_run_parameters(pipeline: Pipeline, overrides: dict[str, JSON]) -> dict[str, JSON]:
    """Parameter values for one run: refuses unknown, missing and non-JSON values."""
    known = {p.name: p for p in pipeline.parameters}
    problems = []
    for name, value in overrides.items():
        if name not in known:
            problems.append(
                f"Pipeline '{pipeline.name}' has no parameter '{name}'."
                + did_you_mean(name, known)
                + (f" Its parameters: {', '.join(known)}." if known else " It takes none.")
            )
            continue
        problem = json_problem(f"The value of parameter '{name}'", value) or type_problem(
            pipeline.name, known[name], value
        )
        if problem:
            problems.append(problem)
    for parameter in pipeline.parameters:
        if parameter.required and parameter.name not in overrides:
            problems.append(
                f"Pipeline '{pipeline.name}' needs a value for parameter '{parameter.name}' "
                f"({parameter.type}). Pass it with -p {parameter.name}=VALUE."
            )
    if problems:
        raise IRValidationError(problems)
    return pipeline.resolve_parameters(overrides)
