"""Built-in materializers for plain Python values: JSON-able values, ``str`` and ``bytes``.

Only exact built-in types are taken: a subclass (an enum, a ``dict`` subclass), a tuple, a
non-finite float or a non-``str`` dict key would come back different from JSON, so such values
fall through to the next candidate (and finally to the "nothing handles it" error).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from zenml_bridge.materializers.base import Materializer, join, prepare

_SCALARS = (bool, type(None))
# JSON joins an escaped surrogate pair into one character: such strings would come back changed.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Python refuses to print ints of more than 4300 digits by default (sys.int_info).
_MAX_INT_BITS = 14_000
# An int written with at most this many characters (sign included) has at most 13,999 bits
# (10**4214 < 2**13999), so it is within _MAX_INT_BITS.
_SAFE_INT_CHARS = 4214
_INT_ONLY = {int}


#: ``json.dumps(value, allow_nan=False, separators=(",", ":"))`` without building an encoder
#: for every value (the encoder holds no state between calls).
_ENCODE = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode

#: This thread's last list of ints accepted by JSONMaterializer.reject_reason, and its JSON
#: text, for the save() that follows.
_ENCODED = threading.local()

#: Deeper nesting is refused: json's encoder recurses once per level.
MAX_DEPTH = 200


def _fine_scalar(item: Any, kind: type) -> bool:
    if kind is str:
        return item.isascii() or not _SURROGATE.search(item)
    if kind is int:
        return bool(item.bit_length() <= _MAX_INT_BITS)
    if kind is float:
        return math.isfinite(item)
    return kind in _SCALARS


def _is_plain_json(value: Any, depth: int = 0) -> bool:
    """Fast check (runs for every JSON-able output): would ``value`` survive JSON unchanged?"""
    kind = type(value)
    if kind is list:
        items: Any = value
    elif kind is dict:
        for key in value:
            if type(key) is not str or not _fine_scalar(key, str):
                return False
        items = value.values()
    else:
        return _fine_scalar(value, kind)
    if depth >= MAX_DEPTH:
        return False  # also ends cycles; _json_problem tells them apart
    kinds = set(map(type, items))
    if len(kinds) == 1:
        # A homogeneous list (the usual case) is checked at C speed, no Python loop per item.
        (only,) = kinds
        if only is int:
            return max(map(int.bit_length, items)) <= _MAX_INT_BITS
        if only is float:
            return all(map(math.isfinite, items))
        if only is str and all(map(str.isascii, items)):
            return True
    for item in items:
        item_kind = type(item)
        if item_kind is list or item_kind is dict:
            if not _is_plain_json(item, depth + 1):
                return False
        elif not _fine_scalar(item, item_kind):
            return False
    return True


def _json_problem(value: Any) -> str | None:
    """Where in ``value`` and why it would not survive a JSON round trip (slow; for messages).

    Shared sub-objects are fine (they load as equal copies); cycles are not.
    """
    stack: list[tuple[Any, str, int]] = [(value, "value", 0)]  # (item, where, depth)
    active: list[int] = []  # ids of the containers enclosing the item, one per depth
    while stack:
        item, where, depth = stack.pop()
        del active[depth:]
        kind = type(item)
        if kind is list or kind is dict:
            if id(item) in active:
                return f"{where} contains itself"
            if depth >= MAX_DEPTH:
                return f"{where} is nested deeper than {MAX_DEPTH} levels"
            active.append(id(item))
            if kind is dict:
                for key in item:
                    if type(key) is not str:
                        return f"{where} has the key {key!r} ({type(key).__name__}, not str)"
                    if not _fine_scalar(key, str):
                        return f"{where} has a key holding a surrogate code point"
                children = [(x, f"{where}[{k!r}]", depth + 1) for k, x in item.items()]
            else:
                children = [(x, f"{where}[{i}]", depth + 1) for i, x in enumerate(item)]
            stack.extend(reversed(children))
            continue
        if _fine_scalar(item, kind):
            continue
        if kind is str:
            return f"{where} holds a surrogate code point"
        if kind is int:
            return f"{where} is an int too long to write as JSON"
        if kind is float:
            return f"{where} is {item!r}, which JSON cannot hold"
        if kind is tuple:
            return f"{where} is a tuple (JSON would give it back as a list)"
        return f"{where} is a {kind.__module__}.{kind.__qualname__}"
    return None


@contextmanager
def reuse_checked_text() -> Iterator[None]:
    """Within it (this thread), ``JSONMaterializer.save`` reuses the text ``reject_reason``
    made of the very same list a moment before. The runtime selects and saves an output inside
    it, with no user code in between; elsewhere (the public ``select``/``save`` API, where the
    caller may change the list in between) ``save`` encodes what it is given. On leaving, the
    kept text and list are released."""
    _ENCODED.reuse = True
    try:
        yield
    finally:
        _ENCODED.reuse = False
        _ENCODED.pending = None


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
        if type(value) is list and set(map(type, value)) == _INT_ONLY:
            # A list of ints (the usual case): its text is needed to save it anyway, and it
            # bounds the ints' sizes without a walk. Each int takes at least one character and
            # a comma, so none is written with more than len(text) - 2 * n characters. save(),
            # which the registry calls right after, reuses the text of this very object.
            try:
                text = _ENCODE(value)  # exact ints: no user code runs
            except ValueError:  # an int too long for str() here: the walk below says why
                text = ""
            if text and len(text) - 2 * len(value) <= _SAFE_INT_CHARS:
                if getattr(_ENCODED, "reuse", False):
                    _ENCODED.pending = (value, text)
                return None
        if _is_plain_json(value):
            return None
        return _json_problem(value) or "it is not plain JSON"

    def save(self, value: Any, folder: str, fs: Any) -> None:
        pending = getattr(_ENCODED, "pending", None)
        _ENCODED.pending = None
        # The text reject_reason made of this very object a moment ago (same thread), else now.
        # ensure_ascii keeps lone surrogates representable; dict order is kept (no sort_keys).
        text = pending[1] if pending is not None and pending[0] is value else _ENCODE(value)
        data = text.encode("ascii")
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


class HTMLMaterializer(Materializer):
    """A :class:`zenml_bridge.HTML` page as ``page.html``, shown as its own visualization."""

    name: ClassVar[str] = "zenml_bridge.html"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = ("zenml_bridge.gates.HTML",)

    def save(self, value: Any, folder: str, fs: Any) -> None:
        prepare(folder, fs)
        with fs.open(join(folder, "page.html"), "wb") as f:
            f.write(str(value).encode("utf-8", "surrogatepass"))

    def load(self, folder: str, fs: Any) -> Any:
        from zenml_bridge.gates import HTML

        with fs.open(join(folder, "page.html"), "rb") as f:
            return HTML(f.read().decode("utf-8", "surrogatepass"))

    def visualizations(self, value: Any) -> Mapping[str, str | bytes]:
        return {"page.html": str(value)}


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
