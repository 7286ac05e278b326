"""The one error type of zenml-bridge.

It lives in the IR package because the IR imports nothing else of ours; every other part
re-exports it through :mod:`zenml_bridge.errors`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BridgeError(Exception):
    """A user error: the message names the object, the problem and the fix.

    The CLI prints the message without a traceback and exits with status 2.
    """

    exit_code = 2


class IRValidationError(BridgeError):
    """A pipeline IR that breaks one or more validation checks (all of them are listed)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            lines = [f"{len(self.problems)} problems in the pipeline:"]
            lines += [f"  - {problem}" for problem in self.problems]
            message = "\n".join(lines)
        super().__init__(message)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean '{matches[0]}'?" if matches else ""
