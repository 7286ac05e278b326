"""Canonical JSON, sha256 identity, load/dump and the JSON Schema of the IR.

One small walker over the dataclass type hints does all three, so a field added to
:mod:`zenml_bridge.ir.model` is serialized, parsed and published without further code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from functools import cache
from typing import Any, Literal, TypeVar, get_args, get_origin

from zenml_bridge.ir.errors import BridgeError
from zenml_bridge.ir.model import IR_VERSION, Pipeline

T = TypeVar("T")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_KEEP = object()


@cache
def _field_plan(cls: type) -> tuple[tuple[str, Any], ...]:
    """``(name, default)`` of each field whose default is left out of the JSON (metadata
    ``omit_empty``: a field added later that must not change existing identities), else
    ``(name, _KEEP)``."""
    return tuple(
        (f.name, f.default if f.metadata.get("omit_empty") else _KEEP)
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    )


def to_dict(value: Any) -> Any:
    """Turn an IR value into plain JSON data (dicts, lists, scalars)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            name: to_dict(getattr(value, name))
            for name, omit_default in _field_plan(type(value))
            if omit_default is _KEEP or getattr(value, name) != omit_default
        }
    if isinstance(value, tuple | list):
        return [to_dict(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_dict(item) for key, item in value.items()}
    return value


def _is_json(annotation: Any) -> bool:
    return annotation is Any


def _parse(annotation: Any, data: Any, where: str) -> Any:
    origin = get_origin(annotation)
    if _is_json(annotation):
        return data
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, data, where)  # type: ignore[arg-type]
    if origin in (types.UnionType, typing.Union):
        options = get_args(annotation)
        if data is None and type(None) in options:
            return None
        inner = [option for option in options if option is not type(None)]
        return _parse(inner[0], data, where)
    if origin is tuple:
        if not isinstance(data, list):
            raise BridgeError(f"IR field '{where}' must be a list, got {type(data).__name__}.")
        (item_type, _ellipsis) = get_args(annotation)
        return tuple(_parse(item_type, item, f"{where}[{i}]") for i, item in enumerate(data))
    if origin is dict:
        if not isinstance(data, dict):
            raise BridgeError(f"IR field '{where}' must be an object, got {type(data).__name__}.")
        _key_type, value_type = get_args(annotation)
        return {key: _parse(value_type, item, f"{where}.{key}") for key, item in data.items()}
    if origin is Literal:
        if data not in get_args(annotation):
            allowed = ", ".join(repr(a) for a in get_args(annotation))
            raise BridgeError(f"IR field '{where}' is {data!r}; allowed: {allowed}.")
        return data
    scalars: dict[Any, Any] = {int: int, str: str, bool: bool, float: (int, float)}
    expected = scalars.get(annotation)
    if expected is not None:
        if not isinstance(data, expected) or (annotation is not bool and isinstance(data, bool)):
            raise BridgeError(
                f"IR field '{where}' must be {annotation.__name__}, got {type(data).__name__}."
            )
        return float(data) if annotation is float else data
    raise TypeError(f"unsupported IR annotation {annotation!r}")  # a bug in the model, not input


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build an IR value of ``cls`` from JSON data, refusing unknown and missing fields."""
    name = where or cls.__name__
    if not isinstance(data, dict):
        raise BridgeError(f"IR field '{name}' must be an object, got {type(data).__name__}.")
    hints = _hints(cls)  # type: ignore[arg-type]
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BridgeError(
            f"IR object '{name}' has unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(fields))}. Was it written by a newer zenml-bridge?"
        )
    kwargs = {}
    for field_name, field in fields.items():
        if field_name in data:
            kwargs[field_name] = _parse(hints[field_name], data[field_name], f"{name}.{field_name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise BridgeError(f"IR object '{name}' lacks the required field '{field_name}'.")
    return cls(**kwargs)


def canonical_json(value: Any) -> bytes:
    """Canonical bytes of an IR value: sorted keys, no whitespace, UTF-8, no NaN."""
    data = to_dict(value)
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256(value: Any) -> str:
    """The identity of an IR value: sha256 hex of its canonical JSON."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def dumps(pipeline: Pipeline) -> str:
    """The IR file format: canonical (sorted keys) and indented, one trailing newline.

    The identity hash is taken over :func:`canonical_json`, so formatting never changes it.
    """
    data = to_dict(pipeline)
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def loads(text: str | bytes, expected_sha256: str | None = None) -> Pipeline:
    """Parse an IR document; with ``expected_sha256`` refuse one whose identity differs."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BridgeError(f"The IR document is not valid JSON ({exc}).") from None
    version = data.get("ir_version") if isinstance(data, dict) else None
    if version != IR_VERSION:
        raise BridgeError(
            f"The IR document has ir_version {version!r}; this zenml-bridge reads "
            f"{IR_VERSION!r}. Compile the pipeline again with this version."
        )
    pipeline = from_dict(Pipeline, data)
    if expected_sha256 is not None:
        actual = sha256(pipeline)
        if actual != expected_sha256:
            raise BridgeError(
                f"The IR document's sha256 is {actual}, expected {expected_sha256}: it was "
                "changed after compiling. Compile and deploy the pipeline again."
            )
    return pipeline


def _schema_of(annotation: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(annotation)
    if _is_json(annotation):
        return {}
    if dataclasses.is_dataclass(annotation):
        name = annotation.__name__  # type: ignore[union-attr]
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            hints = _hints(annotation)  # type: ignore[arg-type]
            fields = dataclasses.fields(annotation)
            defs[name] = {
                "type": "object",
                "description": (annotation.__doc__ or "").strip().splitlines()[0],
                "additionalProperties": False,
                "properties": {f.name: _schema_of(hints[f.name], defs) for f in fields},
                "required": [
                    f.name
                    for f in fields
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                ],
            }
        return {"$ref": f"#/$defs/{name}"}
    if origin in (types.UnionType, typing.Union):
        return {"anyOf": [_schema_of(option, defs) for option in get_args(annotation)]}
    if origin is tuple:
        return {"type": "array", "items": _schema_of(get_args(annotation)[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_of(get_args(annotation)[1], defs)}
    if origin is Literal:
        return {"enum": list(get_args(annotation))}
    simple = {int: "integer", str: "string", bool: "boolean", float: "number"}
    if annotation in simple:
        return {"type": simple[annotation]}
    if annotation is type(None):
        return {"type": "null"}
    raise TypeError(f"unsupported IR annotation {annotation!r}")


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an IR document."""
    defs: dict[str, Any] = {}
    root = _schema_of(Pipeline, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://zenml-bridge.dev/schemas/ir-{IR_VERSION}.json",
        "title": f"zenml-bridge pipeline IR, version {IR_VERSION}",
        **root,
        "$defs": defs,
    }
