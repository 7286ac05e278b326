"""Helpers shared by CLI commands: ``-p key=value`` parsing and SRC loading."""

from __future__ import annotations

import argparse
from typing import Any

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
