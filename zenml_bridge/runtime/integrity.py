"""What keeps the cache honest: parameter normalization, the worker's code check, the
declared-type check of outputs and the verification of cached artifacts.

``run_step`` calls these; each is a small function so that its cost stays visible (they run
for every step: a few dictionary look-ups and stats in the usual case).
"""

from __future__ import annotations

import numbers
import sys
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, get_args, get_origin

from zenml_bridge import ir
from zenml_bridge.errors import BridgeError

#: source -> (module object, {output name: annotation}) of step functions seen by this process.
_DECLARED: dict[str, tuple[Any, dict[str, Any]]] = {}
#: (source, output, type of the value) -> accepted: the check depends on the type only.
_ACCEPTED: dict[tuple[str, str, type], bool] = {}


# -- parameters ---------------------------------------------------------------------------------


@cache
def _float_shape(type_name: str) -> str | None:
    """How a declared type holds floats: "float", "list", "dict", or None (no conversion).

    Type names come from the IR (``float``, ``float | None``, ``list[float]``,
    ``dict[str, float]``); anything else is passed through unchanged.
    """
    options = [part.strip() for part in type_name.split("|") if part.strip() != "None"]
    if len(options) != 1:
        return None
    name = options[0]
    if name == "float":
        return "float"
    if name in ("list[float]", "tuple[float, ...]", "typing.Sequence[float]"):
        return "list"
    if name in ("dict[str, float]",):
        return "dict"
    return None


def _as_float(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return value
    return value


def normalize_parameter(value: Any, type_name: str) -> Any:
    """``value`` in the form its declared type gives it: an int for a float becomes a float.

    ``C=1`` for ``C: float`` is ``1.0``, so equal values give equal cache keys and the step
    sees the type it declared.
    """
    shape = _float_shape(type_name)
    if shape is None or value is None:
        return value
    if shape == "float":
        return _as_float(value)
    if shape == "list" and isinstance(value, list | tuple):
        return [_as_float(item) for item in value]
    if shape == "dict" and isinstance(value, Mapping):
        return {key: _as_float(item) for key, item in value.items()}
    return value


# -- code ---------------------------------------------------------------------------------------


def _target(source: str) -> Any:
    module_name, _, qualname = source.partition(":")
    target: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target


def verify_code(step: ir.Step) -> None:
    """Refuse to execute a step whose code here differs from the code hash in the IR.

    Called after the step's module was imported and just before the step runs (never for a
    cache hit). File hashes are memoized per process and recomputed only when a file's stat
    changes, so this costs a stat per covered file.
    """
    from zenml_bridge.dsl.codehash import current_code_hash

    target = _target(step.source)
    if target is None:  # load_callable reports what cannot be imported
        return
    actual = current_code_hash(target, step.cache_code)
    if actual != step.code_hash:
        raise BridgeError(
            f"Step '{step.name}' will not run: the code here hashes to {actual}, but the "
            f"pipeline IR records {step.code_hash} (cache_code={step.cache_code!r}, "
            f"{step.source}). The code this worker imports is not the code that was compiled: "
            "the worker image has other code (a drifted image, or a run with --no-code-archive), "
            "or a file was edited after compiling. Compile and deploy the pipeline again (with "
            "its code archive), or rebuild the image from the compiled code."
        )


# -- outputs ------------------------------------------------------------------------------------


def declared_outputs(step: ir.Step) -> dict[str, Any]:
    """``{output name: live annotation}`` of the step function (empty when unknown)."""
    module = sys.modules.get(step.source.partition(":")[0])
    cached = _DECLARED.get(step.source)
    if cached is not None and cached[0] is module:
        return cached[1]
    declared: dict[str, Any] = {}
    target = _target(step.source)
    if target is not None:
        from zenml_bridge.dsl.types import output_decls, resolved_hints

        outputs = getattr(target, "outputs", None)
        if isinstance(outputs, list) and all(hasattr(o, "annotation") for o in outputs):
            declared = {o.name: o.annotation for o in outputs}
        elif callable(target):
            import inspect

            try:
                annotation = resolved_hints(target).get(
                    "return", inspect.signature(target).return_annotation
                )
                declared = {o.name: o.annotation for o in output_decls(annotation)}
            except (TypeError, ValueError):
                declared = {}
    _DECLARED[step.source] = (module, declared)
    _ACCEPTED.clear()  # a module (re)loaded: its annotations may differ
    return declared


def _numpy_bool(value: Any) -> bool:
    cls = type(value)
    return cls.__module__ == "numpy" and cls.__name__ in ("bool_", "bool")


def accepts(annotation: Any, value: Any) -> bool:
    """Whether ``value`` fits ``annotation``, checking the origin class only.

    ``list[int]`` checks ``list``; unions check each option; ``Any``, strings (unresolved
    forward references), TypeVars, Protocols and anything that is not a class pass. The
    numeric tower is honoured: an int (numpy's too) is a float, a numpy bool is a bool, a
    Python float is a ``numpy.float64``.
    """
    from zenml_bridge.dsl.types import EMPTY, strip_annotated

    annotation = strip_annotated(annotation)
    if annotation is Any or annotation is EMPTY or isinstance(annotation, str | typing.TypeVar):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return any(accepts(option, value) for option in get_args(annotation))
    if origin is typing.Literal:
        return True
    if origin is not None:
        annotation = origin
    if not isinstance(annotation, type):
        return True  # NewType, ForwardRef, ...: not checkable cheaply
    if annotation is float:
        return isinstance(value, numbers.Real) and not _numpy_bool(value)
    if annotation is int:
        return isinstance(value, numbers.Integral)
    if annotation is complex:
        return isinstance(value, numbers.Complex)
    if annotation is bool:
        return isinstance(value, bool) or _numpy_bool(value)
    if annotation.__module__ == "numpy":  # -> np.float64 returning a float: same kind of number
        if issubclass(annotation, numbers.Integral):
            return isinstance(value, numbers.Integral)
        if issubclass(annotation, numbers.Real):
            return isinstance(value, numbers.Real) and not _numpy_bool(value)
    try:
        return isinstance(value, annotation)
    except TypeError:  # a Protocol that is not runtime-checkable, a generic alias ...
        return True


def check_output_type(step: ir.Step, output: str, value: Any) -> None:
    """Raise a BridgeError when an output's value contradicts its declared type."""
    declared = declared_outputs(step)  # first: it forgets the memo when a module reloaded
    key = (step.source, output, type(value))
    ok = _ACCEPTED.get(key)
    if ok is None:
        ok = output not in declared or accepts(declared[output], value)
        if len(_ACCEPTED) > 10_000:
            _ACCEPTED.clear()
        _ACCEPTED[key] = ok
    if ok:
        return
    annotation = declared[output]
    from zenml_bridge.dsl.types import short_type_name

    actual = "None" if value is None else f"{type(value).__module__}.{type(value).__qualname__}"
    expected = short_type_name(annotation)
    raise BridgeError(
        f"Step '{step.name}' output '{output}' is declared {expected} but the step returned "
        f"{actual.removeprefix('builtins.')}. Return a value of that type, or change the "
        "return annotation (Any skips the check)."
    )


# -- cached artifacts ---------------------------------------------------------------------------


def verify_hit(stack: Any, step: ir.Step, hit: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether every cached output is intact; a damaged one is reported on stderr."""
    for name, info in hit.items():
        try:
            problem = stack.artifacts.verify_stamp(info["uri"], info["sha256"], info)
        except BridgeError as exc:
            problem = str(exc)
        if problem:
            print(
                f"warning: the cached output '{name}' of step '{step.name}' cannot be used "
                f"({problem}); running the step again and replacing its cache entry.",
                file=sys.stderr,
            )
            return False
    return True
