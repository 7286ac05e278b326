"""Helpers shared by CLI commands: ``-p key=value`` parsing and SRC loading."""

from __future__ import annotations

import argparse
import os
from typing import Any
from urllib.parse import quote

from zenml_bridge.config import parse_json_value
from zenml_bridge.errors import BridgeError


def add_parameter_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pipeline parameter; VALUE is read as JSON when it parses (500, 0.1, true, "
        '[1,2], "text"), else as a string. Repeatable.',
    )


def parse_parameters(items: list[str]) -> dict[str, Any]:
    """``["rows=500", "name=abc"]`` -> ``{"rows": 500, "name": "abc"}``."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BridgeError(
                f"Parameter {item!r} is not KEY=VALUE. Write it as -p rows=500 (VALUE may be JSON)."
            )
        # Bounded: a 5,000-digit number or 1,000-deep nesting is a message, not a traceback.
        values[key] = parse_json_value(raw, f"value of -p {key}", text_fallback=True)
    return values


def open_store(url: str | None = None) -> Any:
    """The metadata store for commands that only read (``runs list``, ``artifacts show``, ...).

    A SQLite file this process cannot write (a read-only mount, mode 0444, a folder of another
    user) is opened read-only instead of failing: it can still be listed. Commands that write
    get a clear message from the store (:func:`zenml_bridge.stores.metadata.read_only_error`).
    """
    from zenml_bridge.config import load_settings
    from zenml_bridge.stores.metadata import MetadataStore

    url = url or load_settings().metadata_url
    return MetadataStore(read_only_url(url) or url)


def read_only_url(url: str) -> str | None:
    """A read-only SQLite URL for a plain ``sqlite:///path`` store that cannot be written here.

    ``immutable=1`` (no locks, no ``-shm`` file to create) only when there is no write-ahead
    log to read: with a ``-wal`` file present, its committed rows are read with ``mode=ro``.
    """
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = url[len("sqlite:///") :]
    if not path or path == ":memory:" or path.startswith("file:") or not os.path.isfile(path):
        return None
    path = os.path.abspath(path)
    if os.access(path, os.W_OK) and os.access(os.path.dirname(path), os.W_OK):
        return None
    wal = path + "-wal"
    options = "mode=ro" if os.path.isfile(wal) and os.path.getsize(wal) else "mode=ro&immutable=1"
    return f"sqlite:///file:{quote(path)}?{options}&uri=true"
