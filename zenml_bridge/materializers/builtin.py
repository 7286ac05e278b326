"""Built-in materializers for plain Python values: JSON-able values, ``str`` and ``bytes``.

Only exact built-in types are taken: a subclass (an enum, a ``dict`` subclass), a tuple, a
non-finite float or a non-``str`` dict key would come back different from JSON, so such values
fall through to the next candidate (and finally to the "nothing handles it" error).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, ClassVar

from zenml_bridge.materializers.base import Materializer, join, prepare

_SCALARS = (bool, type(None))
# JSON joins an escaped surrogate pair into one character: such strings would come back changed.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Python refuses to print ints of more than 4300 digits by default (sys.int_info).
_MAX_INT_BITS = 14_000


class _Leave:
    """Stack marker: the walk has finished the container with this id."""

    __slots__ = ("id",)

    def __init__(self, id_: int) -> None:
        self.id = id_


def _json_problem(value: Any, *, explain: bool = False) -> str | None:
    """Why ``value`` would not survive a JSON round trip unchanged, or None when it would.

    Without ``explain`` the answer is just "no" (fast path, no path bookkeeping); with it, the
    reason names where in the value the problem is. Shared sub-objects are fine (they load as
    equal copies); cycles are not.
    """
    stack: list[Any] = [value]
    paths: list[str] = ["value"] if explain else []
    active: set[int] = set()
    while stack:
        item = stack.pop()
        where = paths.pop() if explain else ""
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is str:
            if not item.isascii() and _SURROGATE.search(item):
                return f"{where} holds a surrogate code point" if explain else "no"
            continue
        if kind is int:
            if item.bit_length() > _MAX_INT_BITS:
                return f"{where} is an int too long to write as JSON" if explain else "no"
            continue
        if kind is float:
            if not math.isfinite(item):
                return f"{where} is {item!r}, which JSON cannot hold" if explain else "no"
            continue
        if kind is _Leave:
            active.discard(item.id)
            continue
        if kind is list or kind is dict:
            if id(item) in active:
                return f"{where} contains itself" if explain else "no"
            active.add(id(item))
            stack.append(_Leave(id(item)))
            if explain:
                paths.append("")
            if kind is list:
                stack.extend(reversed(item))
                if explain:
                    paths.extend(f"{where}[{i}]" for i in reversed(range(len(item))))
                continue
            for key in item:
                if type(key) is not str:
                    if explain:
                        return f"{where} has the key {key!r} ({type(key).__name__}, not str)"
                    return "no"
                if not key.isascii() and _SURROGATE.search(key):
                    return f"{where} has a key holding a surrogate code point" if explain else "no"
            stack.extend(reversed(item.values()))
            if explain:
                paths.extend(f"{where}[{k!r}]" for k in reversed(item.keys()))
            continue
        if not explain:
            return "no"
        if kind is tuple:
            return f"{where} is a tuple (JSON would give it back as a list)"
        return f"{where} is a {kind.__module__}.{kind.__qualname__}"
    return None


class JSONMaterializer(Materializer):
    """None, bool, int, float, list and dict (str keys), nested: one ``value.json`` file."""

    name: ClassVar[str] = "builtins.json"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = (
        "builtins.NoneType",
        "builtins.bool",
        "builtins.int",
        "builtins.float",
        "builtins.list",
        "builtins.dict",
    )

    def reject_reason(self, value: Any) -> str | None:
        if _json_problem(value) is None:
            return None
        return _json_problem(value, explain=True)

    def save(self, value: Any, folder: str, fs: Any) -> None:
        # ensure_ascii keeps lone surrogates representable; dict order is kept (no sort_keys).
        data = json.dumps(value, allow_nan=False, separators=(",", ":")).encode("ascii")
        prepare(folder, fs)
        with fs.open(join(folder, "value.json"), "wb") as f:
            f.write(data)

    def load(self, folder: str, fs: Any) -> Any:
        with fs.open(join(folder, "value.json"), "rb") as f:
            return json.loads(f.read())


class StrMaterializer(Materializer):
    """A ``str`` as a UTF-8 ``value.txt`` (byte for byte, newlines untouched)."""

    name: ClassVar[str] = "builtins.str"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = ("builtins.str",)

    def reject_reason(self, value: Any) -> str | None:
        if type(value) is not str:
            return f"it is a subclass of str ({type(value).__qualname__}) and would load as str"
        return None

    def save(self, value: Any, folder: str, fs: Any) -> None:
        prepare(folder, fs)
        with fs.open(join(folder, "value.txt"), "wb") as f:
            # surrogatepass: any Python str (even a lone surrogate) comes back unchanged.
            f.write(value.encode("utf-8", "surrogatepass"))

    def load(self, folder: str, fs: Any) -> Any:
        with fs.open(join(folder, "value.txt"), "rb") as f:
            return f.read().decode("utf-8", "surrogatepass")


class BytesMaterializer(Materializer):
    """``bytes`` as a raw ``value.bin`` file."""

    name: ClassVar[str] = "builtins.bytes"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = ("builtins.bytes",)

    def reject_reason(self, value: Any) -> str | None:
        if type(value) is not bytes:
            return f"it is a subclass of bytes ({type(value).__qualname__}) and would load as bytes"
        return None

    def save(self, value: Any, folder: str, fs: Any) -> None:
        prepare(folder, fs)
        with fs.open(join(folder, "value.bin"), "wb") as f:
            f.write(value)

    def load(self, folder: str, fs: Any) -> Any:
        with fs.open(join(folder, "value.bin"), "rb") as f:
            return bytes(f.read())
