"""Entry point of the ``zenml-bridge`` command: builds the parser, runs a command, maps errors.

User errors (:class:`BridgeError`) print one message without a traceback and exit with 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence

from zenml_bridge import __version__
from zenml_bridge.errors import BridgeError
from zenml_bridge.redact import redact_text

#: Command modules, in the order of ``--help``. Each has ``register(subparsers)``, which adds its
#: sub-parser and sets ``handler`` (a function of the parsed arguments returning an exit code).
COMMANDS = (
    "init",
    "run",
    "compile",
    "runs",
    "artifacts",
    "stack",
    "deployments",
    "integration",
    "ir",
    "dashboard",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise BridgeError(f"{self.prog}: {message}. See '{self.prog} --help'.")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. Given the arguments, only the command they name is registered (each
    command module imports what it needs: ``run`` need not import what ``integration`` does,
    such as ``importlib.metadata``); ``--help``, no command or an unknown one register all."""
    parser = _Parser(
        prog="zenml-bridge",
        description="Run ML pipelines locally, or compile them for Airflow and Kubeflow.",
    )
    parser.add_argument("--version", action="version", version=f"zenml-bridge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    wanted = _command_of(argv)
    for name in COMMANDS if wanted is None else (wanted,):
        module = importlib.import_module(f"zenml_bridge.cli.{name}_cmd")
        module.register(subparsers)
    return parser


def _command_of(argv: Sequence[str] | None) -> str | None:
    """The command ``argv`` names when it is the first argument, else None."""
    if argv is None:
        return None
    first = next(iter(argv), None)
    return first if first in COMMANDS else None


#: Exit code when the reader of our output went away (``zenml-bridge runs list | head -1``):
#: what a shell reports for a command ended by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run one CLI command; returns the exit code (0 ok, 1 a run failed, 2 user error).

    Every message is redacted (:func:`zenml_bridge.redact.redact_text`): a URL with a password
    or a token in an error never reaches the terminal or a CI log.
    """
    try:
        if argv is None:
            argv = sys.argv[1:]
        args = build_parser(argv).parse_args(argv)
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
        return code
    except BridgeError as exc:
        print(f"Error: {redact_text(exc)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        # A full or read-only disk is the user's to fix, not a bug: say where, exit 2.
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"Error: cannot write{redact_text(where)}: {exc.strerror}. Free space (or choose a "
            "writable location: ZENML_BRIDGE_ARTIFACT_ROOT, ZENML_BRIDGE_METADATA_URL, "
            "ZENML_BRIDGE_CODE_CACHE) and run the command again.",
            file=sys.stderr,
        )
        return 2


def _reader_gone() -> int:
    """Stop quietly when stdout's reader closed the pipe (``| head``), like other tools do.

    Later writes (and the flush at interpreter exit) go to /dev/null, so Python prints no
    "Exception ignored ... BrokenPipeError" either.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (captured): nothing to do
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    raise SystemExit(main())
