"""A small, fast YAML dumper for JSON data (dicts, lists, str, int, float, bool, None).

PyYAML spends most of a 1,000-step compile building representer nodes in Python; this writes
the same block style directly. Every string is either a plain scalar that reads back as the
same string under both YAML 1.1 (PyYAML, go-yaml v2) and YAML 1.2 (the core schema of go-yaml
v3 and ruamel.yaml: ``1e3``, ``0o17``, ``.inf`` are numbers there, ``yes`` is not a bool),
a literal block (``|``) when that is exact, or a double-quoted
scalar with JSON escapes (a JSON string is a valid YAML double-quoted scalar), with the few
characters YAML treats as line breaks or non-printable escaped as well. Keys are sorted.

Example:
    >>> dump_documents([{"b": [1, "x: y"], "a": {"k": True}}])
    'a:\\n  k: true\\nb:\\n- 1\\n- "x: y"\\n'
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_PLAIN = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./@+=-]*(:[A-Za-z0-9_./@+=-]+)*")
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_STR_TAG = "tag:yaml.org,2002:str"
# What the YAML 1.2 core schema resolves to null, bool, int or float (yaml.org/spec/1.2.2 10.3).
_YAML12_NOT_STR = re.compile(
    r"null|Null|NULL|~|true|True|TRUE|false|False|FALSE"
    r"|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)


@lru_cache(maxsize=8192)
def _is_plain(text: str) -> bool:
    """True when ``text`` can be written unquoted and reads back as the same string."""
    if not _PLAIN.fullmatch(text) or _YAML12_NOT_STR.fullmatch(text):
        return False
    import yaml

    resolver = yaml.resolver.Resolver()
    tag = resolver.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return bool(tag == _STR_TAG)


def _quoted(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _literal_ok(text: str) -> bool:
    if not text.endswith("\n") or text.endswith("\n\n") or text[0] in " \n" or "\r" in text:
        return False
    return all(line.isprintable() and line == line.rstrip() for line in text[:-1].split("\n"))


def scalar(value: Any, indent: str) -> str:
    """One scalar in YAML; ``indent`` is the indentation of a literal block's lines."""
    if isinstance(value, str):
        if _is_plain(value):
            return value
        if "\n" in value and _literal_ok(value):
            lines = value[:-1].split("\n")
            return "|" + "".join(f"\n{indent}{line}" if line else "\n" for line in lines)
        return _quoted(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        # YAML 1.1 reads a float only with a dot: 1e-05 must be written 1.0e-05.
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    if isinstance(value, dict | list) and not value:
        return "{}" if isinstance(value, dict) else "[]"
    raise TypeError(f"not JSON data: {type(value).__name__}")


def _key(key: str) -> str:
    return key if _is_plain(key) else _quoted(key)


def _block(value: dict[str, Any] | list[Any], pad: str, lines: list[str]) -> None:
    inner = pad + "  "
    if isinstance(value, dict):
        for key in sorted(value):
            item = value[key]
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_key(key)}:")
                _block(item, inner if isinstance(item, dict) else pad, lines)
            else:
                lines.append(f"{pad}{_key(key)}: {scalar(item, inner)}")
        return
    for item in value:
        if isinstance(item, dict) and item:
            start = len(lines)
            _block(item, inner, lines)
            lines[start] = f"{pad}- {lines[start][len(inner):]}"
        elif isinstance(item, list) and item:
            lines.append(f"{pad}-")
            _block(item, inner, lines)
        else:
            lines.append(f"{pad}- {scalar(item, inner)}")


def dump_documents(documents: Sequence[dict[str, Any]]) -> str:
    """The documents as one YAML stream (``---`` between documents)."""
    parts = []
    for document in documents:
        lines: list[str] = []
        _block(document, "", lines)
        parts.append("\n".join(lines or ["{}"]) + "\n")
    return "---\n".join(parts)
