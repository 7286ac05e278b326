"""Step settings: typed, validated blocks of ``@step(settings={key: {...}})``.

An integration declares its block as a dataclass subclass of :class:`StepSettings` with a
``key`` (the block name), and registers it in the entry-point group ``zenml_bridge.settings``
(entry name = the key). The default :meth:`StepSettings.parse` checks the block against the
dataclass fields (unknown keys with did-you-mean, types, ``Literal`` choices) and reports every
problem at once.

Example:
    >>> from dataclasses import dataclass
    >>> from typing import Literal
    >>> @dataclass(frozen=True)
    ... class ReportSettings(StepSettings):
    ...     key = "report"
    ...     fail_on: Literal["error", "warning"] = "error"
    ...     max_rows: int = 1000
    >>> ReportSettings.parse({"max_rows": 10})
    ReportSettings(fail_on='error', max_rows=10)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from zenml_bridge.errors import BridgeError, did_you_mean

S = TypeVar("S", bound="StepSettings")


class StepSettingsError(BridgeError):
    """A settings block with one or more problems (all listed in the message)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        if len(problems) == 1:
            message = problems[0]
        else:
            message = "\n".join([f"{len(problems)} problems in step settings:"] +
                                [f"  - {p}" for p in problems])  # fmt: skip
        super().__init__(message)


class StepSettings:
    """Base of settings classes; subclasses are dataclasses with defaults for every field.

    Override :meth:`parse` for checks the field types cannot say (e.g. one field requires
    another); call ``super().parse`` first and collect problems the same way.
    """

    #: The block name in ``@step(settings={key: {...}})``.
    key: ClassVar[str] = ""

    @classmethod
    def parse(cls: type[S], block: Mapping[str, Any] | None, *, step: str | None = None) -> S:
        """The validated settings of ``block`` (defaults for what it leaves out).

        Args:
            block: the mapping a step gave under :attr:`key` (None or empty: all defaults).
            step: the step's name, for messages.

        Raises:
            StepSettingsError: every unknown key (with did-you-mean), missing required field
                and wrongly typed value, each naming the step, the key and the allowed values.
        """
        where = f"settings '{cls.key}'" + (f" of step '{step}'" if step else "")
        if block is None:
            block = {}
        if not isinstance(block, Mapping):
            raise StepSettingsError(
                [f"The {where} must be a mapping of options, not {type(block).__name__}."]
            )
        if not dataclasses.is_dataclass(cls):
            raise BridgeError(
                f"The settings class {cls.__qualname__} is not a dataclass; decorate it with "
                "@dataclass(frozen=True) or override parse()."
            )
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        hints = typing.get_type_hints(cls)
        problems: list[str] = []
        values: dict[str, Any] = {}
        for name in block:
            if name not in fields:
                problems.append(
                    f"The {where} has no option '{name}'."
                    + did_you_mean(str(name), fields)
                    + f" Options: {', '.join(fields) or 'none'}."
                )
        for name, f in fields.items():
            if name not in block:
                missing = f.default is dataclasses.MISSING
                if missing and f.default_factory is dataclasses.MISSING:
                    problems.append(
                        f"The {where} needs the option '{name}' ({describe(hints[name])})."
                    )
                continue
            value = block[name]
            if not matches(value, hints.get(name, Any)):
                problems.append(
                    f"The {where}: '{name}' is {value!r}; allowed: {describe(hints[name])}."
                )
            values[name] = value
        if problems:
            raise StepSettingsError(problems)
        return cls(**values)


def matches(value: Any, hint: Any) -> bool:
    """True when ``value`` fits the type hint (bool is not a number here)."""
    if hint is Any or hint is object:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return any(matches(value, a) for a in args)
    if hint is type(None) or hint is None:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        item = args[0] if args else Any
        return all(matches(v, item) for v in value)
    if origin in (dict, Mapping) or hint in (dict, Mapping) or origin is typing.Mapping:
        if not isinstance(value, Mapping):
            return False
        key_hint, item = (args or (Any, Any))[:2]
        return all(matches(k, key_hint) and matches(v, item) for k, v in value.items())
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def describe(hint: Any) -> str:
    """How a message names the values a hint allows: ``'error' or 'warning'``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(describe(a) for a in args)
    if hint is type(None):
        return "null"
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    if origin in (list, tuple) or hint in (list, tuple):
        return f"a list of {describe(args[0])}" if args else "a list"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


#: Blocks the compilers read and check themselves (not integration settings).
TARGET_BLOCKS = ("airflow", "kubernetes", "kubeflow", "docker")


def check_blocks(
    steps: Iterable[tuple[str, Mapping[str, Any]]],
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """Errors and warnings of steps' settings blocks, each ``(step, block key, message)``.

    A block whose key has a settings class (entry-point group ``zenml_bridge.settings``) is
    parsed: its problems are errors. An unknown key is a warning with did-you-mean (the
    caller makes it an error under ``--strict``). Compiler blocks (:data:`TARGET_BLOCKS`) are
    left to the compilers.
    """
    from zenml_bridge import plugins

    errors: list[tuple[str, str, str]] = []
    warnings: list[tuple[str, str, str]] = []
    for step, blocks in steps:
        for key, block in blocks.items():
            if key in TARGET_BLOCKS:
                continue
            if plugins.find_plugin(plugins.SETTINGS, key) is None:
                known = [*plugins.plugin_names(plugins.SETTINGS), *TARGET_BLOCKS]
                warnings.append(
                    (
                        step,
                        key,
                        f"Step '{step}' has the settings block '{key}', which no installed "
                        "integration declares, so nothing reads it."
                        + did_you_mean(key, known)
                        + f" Known blocks: {', '.join(sorted(known))}.",
                    )
                )
                continue
            cls = plugins.load_plugin(plugins.SETTINGS, key)
            try:
                cls.parse(block, step=step)
            except StepSettingsError as exc:
                errors += [(step, key, problem) for problem in exc.problems]
            except BridgeError as exc:
                errors.append((step, key, str(exc)))
    return errors, warnings


def validate_steps(
    steps: Iterable[tuple[str, Mapping[str, Any]]], *, strict: bool = False
) -> list[str]:
    """Raise on invalid settings (and on unknown blocks under ``strict``); the warnings.

    Raises:
        StepSettingsError: every problem of every step, in one message.
    """
    errors, warnings = check_blocks(steps)
    problems = [message for _, _, message in errors]
    if strict:
        problems += [message for _, _, message in warnings]
    if problems:
        raise StepSettingsError(problems)
    return [message for _, _, message in warnings]
