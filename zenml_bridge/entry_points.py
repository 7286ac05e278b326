"""Entry points of installed distributions, read without importing ``importlib.metadata``.

``importlib.metadata`` imports ``email``, ``zipfile``, ``socket`` and more to parse package
metadata; a step process that only needs the ``entry_points.txt`` of the installed
distributions pays tens of milliseconds for them (issue 16, item 5). This module reads those
files directly: each ``*.dist-info`` / ``*.egg-info`` folder in the ``sys.path`` folders, the first
distribution of a (normalized) name winning, as ``importlib.metadata.entry_points()`` does.
Anything it cannot read that way (a zip file on ``sys.path``) falls back to
``importlib.metadata``.

Example:
    >>> [ep.name for ep in entry_points("console_scripts") if ep.name == "zenml-bridge"]
    ['zenml-bridge']
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

_SUFFIXES = (".dist-info", ".egg-info")


class Distribution:
    """The distribution an entry point comes from; ``name`` is read from its metadata file
    (``Name:``) when asked for, the folder's name part otherwise."""

    def __init__(self, folder_name: str, info: str | None = None) -> None:
        self._fallback = folder_name
        self._info = info
        self._name: str | None = None

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = self._header("name") or self._fallback
        return self._name

    @property
    def version(self) -> str | None:
        """The ``Version:`` of the distribution's metadata (None when it cannot be read)."""
        return self._header("version")

    def _header(self, key: str) -> str | None:
        if self._info is None:
            return None
        for filename in ("METADATA", "PKG-INFO"):
            try:
                with open(os.path.join(self._info, filename), encoding="utf-8") as handle:
                    for line in handle:
                        if not line.strip():
                            break  # the end of the headers
                        if line.lower().startswith(f"{key}:"):
                            return line.split(":", 1)[1].strip()
            except OSError:
                continue
        return None


@dataclass(frozen=True)
class EntryPoint:
    """What the callers use of ``importlib.metadata.EntryPoint``."""

    name: str
    value: str
    group: str
    dist: Distribution

    def load(self) -> Any:
        module_name, _, attrs = self.value.partition(":")
        obj: Any = importlib.import_module(module_name.strip())
        for attr in filter(None, attrs.split("[")[0].strip().split(".")):
            obj = getattr(obj, attr)
        return obj


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group``, in the order ``importlib.metadata`` gives them."""
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for folder in sys.path:
        folder = folder or "."
        if os.path.isfile(folder):  # a zip on sys.path: let importlib.metadata read it
            return _from_importlib(group)
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in sorted(names):
            if not name.endswith(_SUFFIXES):
                continue
            dist = name.rsplit(".", 1)[0].split("-", 1)[0]
            key = _normalized(dist)
            if key in seen:
                continue
            seen.add(key)
            path = os.path.join(folder, name, "entry_points.txt")
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                continue
            found.extend(_parse(text, group, Distribution(dist, os.path.join(folder, name))))
    return found


def _parse(text: str, group: str, dist: Distribution) -> list[EntryPoint]:
    result = []
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if current == group and "=" in line:
            name, _, value = line.partition("=")
            result.append(EntryPoint(name.strip(), value.strip(), group, dist))
    return result


def _from_importlib(group: str) -> list[EntryPoint]:
    from importlib.metadata import entry_points as read

    return [
        EntryPoint(ep.name, ep.value, group, Distribution(getattr(ep.dist, "name", "?")))
        for ep in read(group=group)
    ]
