"""Entry point of the ``zenml-bridge`` command: builds the parser, runs a command, maps errors.

User errors (:class:`BridgeError`) print one message without a traceback and exit with 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from zenml_bridge import __version__
from zenml_bridge.errors import BridgeError

#: Command modules, in the order of ``--help``. Each has ``register(subparsers)``, which adds its
#: sub-parser and sets ``handler`` (a function of the parsed arguments returning an exit code).
COMMANDS = (
    "init",
    "run",
    "compile",
    "runs",
    "artifacts",
    "stack",
    "integration",
    "ir",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise BridgeError(f"{self.prog}: {message}. See '{self.prog} --help'.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="zenml-bridge",
        description="Run ML pipelines locally, or compile them for Airflow and Kubeflow.",
    )
    parser.add_argument("--version", action="version", version=f"zenml-bridge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"zenml_bridge.cli.{name}_cmd")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one CLI command; returns the exit code (0 ok, 1 a run failed, 2 user error)."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except BridgeError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
