"""Visualizations: reports a materializer keeps beside an artifact, under ``visualizations/``.

:meth:`Materializer.visualizations` returns ``{file name: content}``; :func:`write` puts them
into the artifact's folder while it is still the temporary folder being written, so the
artifact's content hash covers them: they are immutable, verified and cached with it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from zenml_bridge.errors import BridgeError
from zenml_bridge.materializers.base import VISUALIZATION_TYPES, join, prepare

#: The sub-folder of an artifact folder that holds its visualizations.
FOLDER = "visualizations"


def media_type(name: str) -> str:
    """The media type of a visualization file name (by extension)."""
    return VISUALIZATION_TYPES[posixpath.splitext(name)[1].lower()]


def check_name(name: Any, owner: str) -> str:
    """``name`` when it is a plain file name with a known extension, else a BridgeError."""
    allowed = " ".join(VISUALIZATION_TYPES)
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name[0] == ".":
        raise BridgeError(
            f"{owner} returned the visualization name {name!r}: names are plain file names "
            f"(no folder, not hidden) ending in one of {allowed}, e.g. 'report.html'."
        )
    if posixpath.splitext(name)[1].lower() not in VISUALIZATION_TYPES:
        raise BridgeError(
            f"{owner} returned the visualization {name!r}, whose extension is not one of "
            f"{allowed}: the extension says how it is shown. Rename it, e.g. 'report.html'."
        )
    return name


def write(materializer: Any, value: Any, folder: str, fs: Any) -> dict[str, int]:
    """Write ``materializer.visualizations(value)`` into ``folder/visualizations``.

    Returns:
        file name -> size in bytes (empty when the materializer has none).
    """
    pages: Mapping[str, str | bytes] = materializer.visualizations(value) or {}
    owner = f"Materializer {materializer.ref()}"
    if not isinstance(pages, Mapping):
        raise BridgeError(
            f"{owner}.visualizations() returned a {type(pages).__name__}; return a mapping of "
            "file name -> str or bytes (or {} for none)."
        )
    sizes: dict[str, int] = {}
    if not pages:
        return sizes
    target = join(folder, FOLDER)
    prepare(target, fs)
    for name, content in pages.items():
        check_name(name, owner)
        if isinstance(content, str):
            data = content.encode("utf-8")
        elif isinstance(content, bytes | bytearray | memoryview):
            data = bytes(content)
        else:
            raise BridgeError(
                f"{owner} returned {type(content).__name__} content for visualization "
                f"{name!r}; give str (written as UTF-8) or bytes."
            )
        with fs.open(join(target, name), "wb") as handle:
            handle.write(data)
        sizes[name] = len(data)
    return sizes


def list_files(uri: str, fs: Any) -> dict[str, int]:
    """The visualizations of the artifact folder ``uri``: file name -> size (sorted)."""
    target = join(uri, FOLDER)
    try:
        if not fs.isdir(target):
            return {}
        entries = fs.ls(target, detail=True)
    except FileNotFoundError:
        return {}
    found = {}
    for entry in entries:
        name = posixpath.basename(str(entry["name"]).rstrip("/"))
        known = posixpath.splitext(name)[1].lower() in VISUALIZATION_TYPES
        if entry.get("type") == "file" and known:
            found[name] = int(entry.get("size") or 0)
    return dict(sorted(found.items()))
