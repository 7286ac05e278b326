"""``zenml-bridge ir schema``: print the JSON Schema of the pipeline IR."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("ir", help="the pipeline IR: print its JSON Schema")
    actions = parser.add_subparsers(dest="ir_command", metavar="ACTION")
    actions.required = True
    schema = actions.add_parser("schema", help="print the IR's JSON Schema (draft 2020-12)")
    schema.set_defaults(handler=_schema)


def _schema(args: argparse.Namespace) -> int:
    from zenml_bridge.ir import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0
