"""``@step``: a plain function that records an invocation when called inside a pipeline."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar, overload

from zenml_bridge import ir
from zenml_bridge.dsl import codehash
from zenml_bridge.dsl.trace import (
    Invocation,
    ParameterRef,
    StepOutput,
    Trace,
    active_trace,
    display_path,
    user_location,
)
from zenml_bridge.dsl.types import (
    EMPTY,
    OutputDecl,
    is_compatible,
    output_decls,
    resolved_hints,
    short_type_name,
    type_name,
)

P = ParamSpec("P")
R = TypeVar("R")

#: Step options a @pipeline may give as defaults for all of its steps.
STEP_OPTIONS = (
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "cache",
    "cache_salt",
    "cache_code",
    "cache_env",
    "timeout",
    "cpu",
    "memory",
    "gpu",
    "image",
    "env",
    "allow_pickle",
    "settings",
    "on_failure",
    "on_success",
)


def source_of(func: Callable[..., Any]) -> tuple[str, str, int]:
    """``(module:qualname, file relative to its import root, first line)`` of a function."""
    module = func.__module__
    code = getattr(func, "__code__", None)
    filename = code.co_filename if code else ""
    if module == "__main__" or not filename:
        relative = filename.rsplit("/", 1)[-1]
    else:
        relative = module.replace(".", "/") + (
            "/__init__.py" if filename.endswith("__init__.py") else ".py"
        )
    return f"{module}:{func.__qualname__}", relative, code.co_firstlineno if code else 0


def code_hash(func: Callable[..., Any]) -> str:
    """sha256 of the function's source text (the ``cache_code="function"`` policy)."""
    return codehash.function_hash(func)


def description_of(func: Callable[..., Any]) -> str:
    """The first paragraph of a docstring, on one line."""
    doc = inspect.getdoc(func) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def hook_source(hook: Callable[..., Any] | str | None) -> str | None:
    if hook is None or isinstance(hook, str):
        return hook
    return f"{hook.__module__}:{hook.__qualname__}"


class Step(Generic[P, R]):
    """A step function. Outside a pipeline, calling it calls the function.

    Inside a ``@pipeline`` body, calling it records an invocation and returns placeholders for
    its outputs (one :class:`StepOutput`, a tuple of them, or an :class:`Invocation` when it has
    none).
    """

    def __init__(self, func: Callable[P, R], name: str | None, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - set(STEP_OPTIONS))
        if unknown:
            raise unknown_option_error("@step", unknown, STEP_OPTIONS)
        self.func = func
        self.name = name or func.__name__
        self.options = dict(options)
        policy = self.options.get("cache_code", "module")
        if policy not in codehash.POLICIES:
            raise ir.BridgeError(
                f"@step {self.name}: cache_code={policy!r} is not a policy "
                f"({_def_location(func)}). Use one of: "
                + ", ".join(repr(p) for p in codehash.POLICIES)
                + "."
            )
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<step {self.name} ({self.func.__module__}.{self.func.__qualname__})>"

    def __get__(self, instance: Any, owner: Any) -> Any:
        return self  # steps are functions, never bound methods

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.func)

    @functools.cached_property
    def hints(self) -> dict[str, Any]:
        return resolved_hints(self.func)

    @functools.cached_property
    def outputs(self) -> list[OutputDecl]:
        return output_decls(self.hints.get("return", self.signature.return_annotation))

    @functools.cached_property
    def code_hash(self) -> str:
        """The hash of the code this step runs under its own ``cache_code`` policy."""
        return self.code_identity(self.options.get("cache_code", "module"))[1]

    def code_identity(self, policy: str) -> tuple[str, str]:
        """``(effective policy, code hash)``; computed once per policy (see dsl.codehash)."""
        memo: dict[str, tuple[str, str]] = self.__dict__.setdefault("_code_identity", {})
        found = memo.get(policy)
        if found is None:
            found = memo[policy] = codehash.code_hash(self.func, policy)
        return found

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        trace = active_trace()
        if trace is None:
            return self.func(*args, **kwargs)
        return self._record(trace, args, dict(kwargs))  # type: ignore[no-any-return]

    def call_with_inputs(self, values: Mapping[str, Any]) -> Any:
        """Call the function with resolved input values keyed as in the IR's ``inputs``.

        Inputs of a ``*args`` parameter are keyed ``name.0``, ``name.1``, ...
        """
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for parameter in self.signature.parameters.values():
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                prefix = parameter.name + "."
                keys = sorted((k for k in values if k.startswith(prefix)), key=_index_of)
                args.extend(values[k] for k in keys)
            elif parameter.kind is inspect.Parameter.KEYWORD_ONLY:
                kwargs[parameter.name] = values[parameter.name]
            elif parameter.kind is not inspect.Parameter.VAR_KEYWORD:
                args.append(values[parameter.name])
        return self.func(*args, **kwargs)

    # -- tracing -------------------------------------------------------------------------------

    def _record(self, trace: Trace, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        where = user_location()
        after = kwargs.pop("after", None) if "after" not in self.signature.parameters else None
        name = trace.unique_name(self.name)
        problem = ir.name_problem(
            "Step", name, where, "Rename the function or pass @step(name=...)."
        )
        if problem:
            raise ir.BridgeError(problem)
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise self._binding_error(name, args, kwargs, exc, where) from None
        inputs: list[ir.InputRef] = []
        for parameter in self.signature.parameters.values():
            annotation = self.hints.get(parameter.name, parameter.annotation)
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                if bound.arguments.get(parameter.name):
                    raise ir.BridgeError(
                        f"Step '{name}' takes **{parameter.name}, which a pipeline cannot wire "
                        f"({where}). Declare each input as a named argument."
                    )
                continue
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                for i, value in enumerate(bound.arguments.get(parameter.name, ())):
                    inputs.append(
                        self._input(trace, name, f"{parameter.name}.{i}", value, annotation, where)
                    )
                continue
            # a parameter not bound has a default: bind() checked that
            value = bound.arguments.get(parameter.name, parameter.default)
            inputs.append(self._input(trace, name, parameter.name, value, annotation, where))
        step = ir.Step(
            name=name,
            description=description_of(self.func),
            inputs=tuple(inputs),
            outputs=self._output_specs(name, where),
            after=tuple(_after_names(trace, name, after, where)),
            **self._ir_fields(trace),
        )
        trace.steps.append(step)
        outputs = [StepOutput(trace, name, o.name, o.annotation) for o in self.outputs]
        if not outputs:
            return Invocation(trace, name)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _ir_fields(self, trace: Trace) -> dict[str, Any]:
        source, source_file, source_line = source_of(self.func)
        options = {**trace.defaults, **self.options}
        settings = {**options.get("settings", {})}
        policy = options.get("cache_code", "module")
        if policy not in codehash.POLICIES:
            raise ir.BridgeError(
                f"Pipeline '{trace.pipeline_name}': cache_code={policy!r} is not a policy. Use one "
                "of: " + ", ".join(repr(p) for p in codehash.POLICIES) + "."
            )
        effective, hashed = self.code_identity(policy)
        return {
            "source": source,
            "source_file": source_file,
            "source_line": source_line,
            "code_hash": hashed,
            "cache_code": effective,
            "cache_env_hash": (
                codehash.env_hash(self.func, effective) if options.get("cache_env") else ""
            ),
            "retry": ir.RetryPolicy(
                max_retries=int(options.get("retries", 0)),
                delay_s=float(options.get("retry_delay", 10.0)),
                backoff_factor=float(options.get("retry_backoff", 1.0)),
                max_delay_s=_optional_float(options.get("max_retry_delay")),
            ),
            "cache": bool(options.get("cache", True)),
            "cache_salt": str(options.get("cache_salt", "")),
            "timeout_s": None if options.get("timeout") is None else float(options["timeout"]),
            "resources": ir.Resources(
                cpu=None if options.get("cpu") is None else str(options["cpu"]),
                memory=options.get("memory"),
                gpu=int(options.get("gpu", 0)),
            ),
            "image": options.get("image"),
            "env": {str(k): str(v) for k, v in (options.get("env") or {}).items()},
            "allow_pickle": bool(options.get("allow_pickle", False)),
            "settings": settings,
            "hooks": {
                key: str(hook_source(options[key]))
                for key in ("on_failure", "on_success")
                if options.get(key) is not None
            },
        }

    def _output_specs(self, name: str, where: str) -> tuple[ir.OutputSpec, ...]:
        names = [o.name for o in self.outputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ir.BridgeError(
                f"Step '{name}' declares the output '{duplicates[0]}' twice "
                f"({_def_location(self.func)}). Give each Annotated[T, 'name'] of the return "
                "type a distinct name."
            )
        for output in self.outputs:
            if output.materializer is not None:
                check_materializer(output.materializer, f"output '{output.name}' of step '{name}'")
        return tuple(
            ir.OutputSpec(name=o.name, type=type_name(o.annotation), materializer=o.materializer)
            for o in self.outputs
        )

    def _input(
        self, trace: Trace, step: str, name: str, value: Any, annotation: Any, where: str
    ) -> ir.InputRef:
        type_ = type_name(annotation)
        if isinstance(value, StepOutput):
            if value.trace is not trace:
                raise ir.BridgeError(
                    f"Step '{step}' input '{name}' gets the output '{value.step}.{value.output}' "
                    f"of another pipeline's trace ({where}). Call the producing step in this "
                    "pipeline."
                )
            if not is_compatible(value.annotation, annotation):
                raise ir.BridgeError(
                    f"Step '{step}' input '{name}' expects {short_type_name(annotation)} but "
                    f"'{value.step}.{value.output}' is {short_type_name(value.annotation)} "
                    f"({where}). Change the annotation or the upstream step."
                )
            return ir.InputRef.of_output(name, value.step, value.output, type_)
        if isinstance(value, ParameterRef):
            if not is_compatible(value.annotation, annotation):
                raise ir.BridgeError(
                    f"Step '{step}' input '{name}' expects {short_type_name(annotation)} but the "
                    f"pipeline parameter '{value.name}' is {short_type_name(value.annotation)} "
                    f"({where}). Change one of the annotations."
                )
            return ir.InputRef.of_parameter(name, value.name, type_)
        if isinstance(value, Invocation):
            raise ir.BridgeError(
                f"Step '{step}' input '{name}' gets the call of step '{value.step}', which has "
                f"no outputs ({where}). Pass it as after={value.step!r}, or give '{value.step}' "
                "a return annotation."
            )
        if value is EMPTY:  # pragma: no cover - bind() reports missing arguments first
            raise ir.BridgeError(f"Step '{step}' input '{name}' has no value ({where}).")
        if _contains_placeholder(value):
            raise ir.BridgeError(
                f"Step '{step}' input '{name}' gets a {type(value).__name__} that contains step "
                f"outputs or parameters ({where}); a step result can be passed only directly as "
                "an argument. Pass each as its own argument (or as *args), or build the "
                "collection inside a step."
            )
        problem = ir.json_problem(f"Step '{step}' input '{name}' ({where})", value)
        if problem:
            raise ir.BridgeError(
                problem
                + " To pass data between steps, return it from one step and pass that output."
            )
        return ir.InputRef.of_constant(name, _json_copy(value), type_)

    def _binding_error(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], exc: TypeError, where: str
    ) -> ir.BridgeError:
        known = [p for p in self.signature.parameters]
        for key in kwargs:
            if key not in self.signature.parameters:
                return ir.BridgeError(
                    f"Step '{name}' has no argument '{key}' ({where})."
                    + ir.did_you_mean(key, known)
                    + f" Its arguments: {', '.join(known) or 'none'}."
                )
        try:
            partial = self.signature.bind_partial(*args, **kwargs)
        except TypeError:
            return ir.BridgeError(
                f"Step '{name}' takes {len(known)} argument(s) but got {len(args)} positional "
                f"ones ({where}). Pass inputs by name: {', '.join(known)}."
            )
        missing = [
            p.name
            for p in self.signature.parameters.values()
            if p.name not in partial.arguments
            and p.default is EMPTY
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]
        if missing:
            return ir.BridgeError(
                f"Step '{name}' is missing the argument '{missing[0]}' ({where}). Pass a step "
                f"output, a pipeline parameter or a value for it, or give it a default."
            )
        return ir.BridgeError(f"Step '{name}' cannot be called this way ({where}): {exc}.")


def unknown_option_error(what: str, unknown: list[str], known: tuple[str, ...]) -> ir.BridgeError:
    first = unknown[0]
    return ir.BridgeError(
        f"{what} has no option '{first}' ({user_location()})."
        + ir.did_you_mean(first, known)
        + f" Options: {', '.join(known)}."
    )


def _index_of(key: str) -> int:
    return int(key.rsplit(".", 1)[1])


def check_materializer(key: str, what: str) -> None:
    """Refuse an unknown ``Materializer("key")`` when the pipeline is traced.

    The registry is looked up by module name, as the plugin table loads plugins: the DSL layer
    does not depend on the materializers package (which sits above it), and the registry
    imports nothing heavy (built-ins are known by name; only entry points are scanned).
    """
    registry = importlib.import_module("zenml_bridge.materializers.registry")
    names = [entry[0] for entry in registry.available()]
    if key in names:
        return
    raise ir.BridgeError(
        f"Materializer({key!r}) chosen for {what} is not a known materializer."
        + ir.did_you_mean(key, names)
        + f" Known: {', '.join(names)}. Fix the key, or register the materializer (register() "
        "in the module that defines the step, or an entry point; see docs/materializers.md)."
    )


def _def_location(func: Callable[..., Any]) -> str:
    code = func.__code__
    return f"{display_path(code.co_filename)}:{code.co_firstlineno}"


def _contains_placeholder(value: Any) -> bool:
    if isinstance(value, StepOutput | ParameterRef | Invocation):
        return True
    if isinstance(value, list | tuple | set | frozenset):
        return any(_contains_placeholder(item) for item in value)
    if isinstance(value, dict):
        return any(_contains_placeholder(item) for item in value.values())
    return False


def _json_copy(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_json_copy(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_copy(item) for key, item in value.items()}
    return value


def _after_names(trace: Trace, step: str, after: Any, where: str) -> list[str]:
    if after is None:
        return []
    items = after if isinstance(after, list | tuple) else [after]
    names: list[str] = []
    for item in items:
        if isinstance(item, tuple):
            names.extend(_after_names(trace, step, list(item), where))
        elif isinstance(item, StepOutput | Invocation):
            names.append(item.step)
        elif isinstance(item, str):
            taken = [s.name for s in trace.steps]
            if item not in taken:
                raise ir.BridgeError(
                    f"Step '{step}' runs after={item!r}, but no step of that name was called "
                    f"before it ({where})." + ir.did_you_mean(item, taken)
                )
            names.append(item)
        elif isinstance(item, Step):
            names.append(item.name)
        else:
            raise ir.BridgeError(
                f"Step '{step}' got after={item!r} ({where}); after= takes what a step call "
                "returned, a step name, or a list of them."
            )
    return sorted(set(names))


@overload
def step(func: Callable[P, R], /) -> Step[P, R]: ...


@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float = 10.0,
    retry_backoff: float = 1.0,
    max_retry_delay: float | None = None,
    cache: bool = True,
    cache_salt: str = "",
    cache_code: str = "module",
    cache_env: bool = False,
    timeout: float | None = None,
    cpu: str | float | None = None,
    memory: str | None = None,
    gpu: int = 0,
    image: str | None = None,
    env: Mapping[str, str] | None = None,
    allow_pickle: bool = False,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    on_failure: Callable[..., Any] | str | None = None,
    on_success: Callable[..., Any] | str | None = None,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(func: Any = None, /, *, name: str | None = None, **options: Any) -> Any:
    """Make a function a pipeline step.

    Works bare (``@step``) and with options (``@step(retries=2, cache=False)``). Options:
    ``retries``/``retry_delay``/``retry_backoff`` (seconds, factor), ``max_retry_delay`` (a cap
    on retry waits; on Kubeflow the whole retry window), ``cache``, ``cache_salt``,
    ``cache_code`` (what the cache key covers of the code: ``"function"``, ``"module"`` -- the
    default: the step's module and the project modules it imports -- or ``"project"``),
    ``cache_env`` (also the installed versions of the libraries the step module imports),
    ``timeout`` (seconds), ``cpu``/``memory``/``gpu``, ``image``, ``env``, ``allow_pickle``
    (let pickle store outputs no other materializer handles), per-target ``settings``
    (``{"kubernetes": {...}, "airflow": {...}}``) and ``on_failure``/``on_success`` hooks.

    Example:
        >>> @step
        ... def double(x: int) -> int:
        ...     return 2 * x
        >>> double(21)
        42
    """
    if func is not None:
        return Step(func, name, options)
    return lambda f: Step(f, name, options)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
