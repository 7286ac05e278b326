"""Reading step signatures: output specs from return annotations, type names, compatibility."""

from __future__ import annotations

import inspect
import numbers
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from zenml_bridge.gates import MaterializerChoice

EMPTY = inspect.Parameter.empty


@dataclass(frozen=True, slots=True)
class OutputDecl:
    """An output read from a return annotation: its name and (live) annotation."""

    name: str
    annotation: Any
    #: The registry key of ``Annotated[T, "name", Materializer("key")]``, else None.
    materializer: str | None = None


def resolved_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """Type hints with ``Annotated`` kept; names that do not resolve stay as strings."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # a forward reference to a name imported only under TYPE_CHECKING
        return dict(getattr(func, "__annotations__", {}))


def strip_annotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _annotated_name(annotation: Any) -> str | None:
    if get_origin(annotation) is not Annotated:
        return None
    for meta in get_args(annotation)[1:]:
        if isinstance(meta, str):
            return meta
    return None


def _annotated_materializer(annotation: Any) -> str | None:
    """The key of a ``Materializer("key")`` marker in an ``Annotated`` (the last one wins)."""
    found = None
    while get_origin(annotation) is Annotated:
        for meta in get_args(annotation)[1:]:
            if isinstance(meta, MaterializerChoice):
                found = meta.key
        annotation = get_args(annotation)[0]
    return found


def output_decls(return_annotation: Any) -> list[OutputDecl]:
    """Outputs of a step from its return annotation.

    No annotation: one output ``output`` of any type. ``None``: no output. ``Annotated[T, "x"]``:
    one output ``x``. A ``tuple[...]`` whose items are all named with ``Annotated``: one output
    per item. Anything else: one output ``output`` of that type. A ``Materializer("key")`` in
    an output's ``Annotated`` chooses its materializer.
    """
    if return_annotation is EMPTY:
        return [OutputDecl("output", Any)]
    if return_annotation is None or return_annotation is type(None):
        return []
    name = _annotated_name(return_annotation)
    chosen = _annotated_materializer(return_annotation)
    if name is not None:
        return [OutputDecl(name, strip_annotated(return_annotation), chosen)]
    if get_origin(return_annotation) is tuple:
        items = get_args(return_annotation)
        names = [_annotated_name(item) for item in items]
        if items and Ellipsis not in items and all(names):
            return [
                OutputDecl(str(n), strip_annotated(item), _annotated_materializer(item))
                for n, item in zip(names, items, strict=True)
            ]
    return [OutputDecl("output", return_annotation, chosen)]


def type_name(annotation: Any) -> str:
    """A stable, readable name of an annotation: ``int``, ``pandas.core.frame.DataFrame``."""
    annotation = strip_annotated(annotation)
    if annotation is EMPTY or annotation is Any:
        return "Any"
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, str):
        return annotation
    origin = get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return " | ".join(type_name(arg) for arg in get_args(annotation))
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else type_name(a) for a in get_args(annotation))
        return f"{type_name(origin)}[{args}]"
    if isinstance(annotation, type):
        if annotation.__module__ == "builtins":
            return annotation.__qualname__
        return f"{_public_module(annotation)}.{annotation.__qualname__}"
    return repr(annotation).replace("typing.", "")


def _public_module(cls: type) -> str:
    """The shortest parent package that exports the identical class, else its own module.

    ``pandas.core.frame.DataFrame`` (pandas 2) and ``pandas.DataFrame`` (pandas 3) are the same
    class: naming it by its public path keeps the IR, and so its sha256, stable across versions.
    Only already imported packages are consulted, so naming a type imports nothing.
    """
    parts = cls.__module__.split(".")
    if "." not in cls.__qualname__:
        for end in range(1, len(parts)):
            package = sys.modules.get(".".join(parts[:end]))
            if package is not None and vars(package).get(cls.__qualname__) is cls:
                return package.__name__
    return cls.__module__


def short_type_name(annotation: Any) -> str:
    """The name of an annotation for messages: ``DataFrame`` rather than its full path."""
    annotation = strip_annotated(annotation)
    if isinstance(annotation, type) and get_origin(annotation) is None:
        return annotation.__qualname__
    return type_name(annotation)


def is_compatible(produced: Any, expected: Any) -> bool:
    """Whether a value annotated ``produced`` may be passed where ``expected`` is annotated.

    Lenient where Python typing cannot be checked cheaply (strings, TypeVars, generic
    arguments): only clear contradictions between classes are refused.
    """
    produced, expected = strip_annotated(produced), strip_annotated(expected)
    if EMPTY in (produced, expected) or Any in (produced, expected):
        return True
    if isinstance(produced, str) or isinstance(expected, str):
        return True
    # A union produced must fit option by option (``int | None`` fits ``int | None`` because
    # int fits and None fits); only then is an expected union searched for one fitting option.
    if get_origin(produced) in (types.UnionType, typing.Union):
        return all(is_compatible(option, expected) for option in get_args(produced))
    if get_origin(expected) in (types.UnionType, typing.Union):
        return any(is_compatible(produced, option) for option in get_args(expected))
    produced_cls = get_origin(produced) or produced
    expected_cls = get_origin(expected) or expected
    if not isinstance(produced_cls, type) or not isinstance(expected_cls, type):
        return True
    if expected_cls is float and produced_cls is int:  # PEP 484 numeric tower
        return True
    if expected_cls is complex and produced_cls in (int, float):
        return True
    if expected_cls is numbers.Number and issubclass(produced_cls, numbers.Number):
        return True
    try:
        return issubclass(produced_cls, expected_cls)
    except TypeError:
        return True
