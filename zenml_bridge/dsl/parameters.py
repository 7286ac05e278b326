"""Pipeline parameter descriptions: ``parameter(default, description=...)`` in the signature,
or the ``Args:`` section of a Google-style docstring (the explicit one wins)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class ParameterInfo:
    """A pipeline parameter's default (``_REQUIRED`` when it has none) and its description."""

    default: Any
    description: str

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


def parameter(default: Any = _REQUIRED, *, description: str) -> Any:
    """Describe a pipeline parameter where it is declared (shown in Airflow's trigger form).

    Example:
        >>> from zenml_bridge import parameter, pipeline
        >>> @pipeline
        ... def training(rows: int = parameter(1000, description="rows to load")) -> None:
        ...     ...
    """
    if not isinstance(description, str):
        raise TypeError("parameter(description=...) must be a string")
    return ParameterInfo(default, description)


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params):\s*$")
_OTHER_SECTION = re.compile(r"^[A-Z][A-Za-z ]*:\s*$")
_ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def declared_parameter(p: inspect.Parameter, descriptions: dict[str, str]) -> inspect.Parameter:
    """``p`` with a :func:`parameter` default unwrapped; its description is put into
    ``descriptions`` (over the docstring's)."""
    if isinstance(p.default, ParameterInfo):
        info = p.default
        descriptions[p.name] = info.description
        return p.replace(default=inspect.Parameter.empty if info.required else info.default)
    return p


def parameter_descriptions(func: Callable[..., Any]) -> dict[str, str]:
    """``{name: description}`` from the ``Args:`` section of ``func``'s docstring.

    Continuation lines (indented deeper than the entry) are joined with spaces.

    Example:
        >>> def f(rows: int = 5):
        ...     '''Make data.
        ...
        ...     Args:
        ...         rows: how many rows
        ...             to make.
        ...     '''
        >>> parameter_descriptions(f)
        {'rows': 'how many rows to make.'}
    """
    doc = inspect.getdoc(func) or ""
    found: dict[str, str] = {}
    lines = doc.splitlines()
    inside, current, entry_indent = False, None, None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not inside:
            inside = bool(_SECTION.match(stripped)) and indent == 0
            continue
        if not stripped:
            continue
        if indent == 0 and _OTHER_SECTION.match(stripped):
            break
        if entry_indent is None:
            entry_indent = indent
        match = _ENTRY.match(stripped)
        if indent <= entry_indent and match:
            current = match.group(1).lstrip("*")
            found[current] = match.group(3).strip()
        elif current is not None and indent > entry_indent:
            found[current] = f"{found[current]} {stripped}".strip()
    return found
