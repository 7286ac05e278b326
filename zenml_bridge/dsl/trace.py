"""The pipeline trace: while a @pipeline body runs, step calls record invocations here.

The active trace lives in a ContextVar, so tracing is safe across threads and asyncio tasks.
Step calls return placeholders (:class:`StepOutput`) that may only be passed to other steps.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NoReturn

from zenml_bridge.ir import BridgeError, Step

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_location(depth: int = 1) -> str:
    """``file.py:line`` of the innermost frame outside zenml-bridge (the user's code)."""
    frame = sys._getframe(depth)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "<unknown>"
    return f"{display_path(frame.f_code.co_filename)}:{frame.f_lineno}"


def display_path(path: str) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


class Trace:
    """The invocations recorded while one pipeline body runs."""

    def __init__(self, pipeline_name: str, defaults: dict[str, Any]) -> None:
        self.pipeline_name = pipeline_name
        self.defaults = defaults
        self.steps: list[Step] = []
        self._taken: set[str] = set()

    def unique_name(self, base: str) -> str:
        """``base`` the first time, then ``base_2``, ``base_3``, ..."""
        name, n = base, 1
        while name in self._taken:
            n += 1
            name = f"{base}_{n}"
        self._taken.add(name)
        return name


_ACTIVE: ContextVar[Trace | None] = ContextVar("zenml_bridge_trace", default=None)


def active_trace() -> Trace | None:
    return _ACTIVE.get()


@contextmanager
def tracing(pipeline_name: str, defaults: dict[str, Any]) -> Iterator[Trace]:
    trace = Trace(pipeline_name, defaults)
    token = _ACTIVE.set(trace)
    try:
        yield trace
    finally:
        _ACTIVE.reset(token)


def _refusing(operator: str) -> Callable[[Any, Any], Any]:
    def refuse(self: _Placeholder, other: Any) -> Any:
        self._refuse(f"the operator {operator}")

    return refuse


class _Placeholder:
    """Base of values that stand for something known only when the pipeline runs."""

    __slots__ = ()

    def _describe(self) -> str:
        raise NotImplementedError

    def _refuse(self, operation: str) -> NoReturn:
        raise BridgeError(
            f"{self._describe()} is a placeholder while the pipeline is defined; it cannot be "
            f"used in a Python expression ({operation}) at {user_location(3)}. Pass it to a step "
            "and do this computation inside that step."
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse(f".{name}")

    def __bool__(self) -> bool:
        self._refuse("truth value, e.g. `if` or `and`")

    def __getitem__(self, key: Any) -> Any:
        self._refuse(f"[{key!r}]")

    def __len__(self) -> int:
        self._refuse("len()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("a call")

    def __format__(self, spec: str) -> str:
        self._refuse("formatting into a string")

    def __str__(self) -> str:
        self._refuse("str()")

    def __int__(self) -> int:
        self._refuse("int()")

    def __float__(self) -> float:
        self._refuse("float()")

    def __index__(self) -> int:
        self._refuse("use as an index")

    def __contains__(self, item: Any) -> bool:
        self._refuse("the operator in")

    def __eq__(self, other: object) -> bool:
        self._refuse("the operator ==")

    def __ne__(self, other: object) -> bool:
        self._refuse("the operator !=")

    __hash__ = object.__hash__

    def __iter__(self) -> Any:
        self._refuse("iteration or unpacking")

    __add__ = __radd__ = _refusing("+")
    __sub__ = __rsub__ = _refusing("-")
    __mul__ = __rmul__ = _refusing("*")
    __truediv__ = __rtruediv__ = _refusing("/")
    __floordiv__ = __rfloordiv__ = _refusing("//")
    __mod__ = __rmod__ = _refusing("%")
    __pow__ = __rpow__ = _refusing("**")
    __lt__ = __le__ = __gt__ = __ge__ = _refusing("a comparison")


class StepOutput(_Placeholder):
    """One output of a step invocation, as seen inside a pipeline body."""

    __slots__ = ("trace", "step", "output", "annotation")

    def __init__(self, trace: Trace, step: str, output: str, annotation: Any) -> None:
        object.__setattr__(self, "trace", trace)
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "output", output)
        object.__setattr__(self, "annotation", annotation)

    def _describe(self) -> str:
        return f"The output '{self.step}.{self.output}'"

    def __repr__(self) -> str:
        return f"<StepOutput {self.step}.{self.output}>"


class Invocation(_Placeholder):
    """What calling a step with no outputs returns: usable only in ``after=``."""

    __slots__ = ("trace", "step")

    def __init__(self, trace: Trace, step: str) -> None:
        object.__setattr__(self, "trace", trace)
        object.__setattr__(self, "step", step)

    def _describe(self) -> str:
        return f"The call of step '{self.step}' (it has no outputs)"

    def __repr__(self) -> str:
        return f"<Invocation {self.step}>"


class ParameterRef(_Placeholder):
    """A pipeline parameter inside the pipeline body: its value is known per run."""

    __slots__ = ("name", "annotation")

    def __init__(self, name: str, annotation: Any) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "annotation", annotation)

    def _describe(self) -> str:
        return f"The pipeline parameter '{self.name}'"

    def __repr__(self) -> str:
        return f"<ParameterRef {self.name}>"
