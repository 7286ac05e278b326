"""What every compiler shares: options, the problem report, IR passes and atomic writes.

A compiler is a small class: capability flags, a list of pure IR-to-IR passes, a
:meth:`Compiler.check` that collects everything the target cannot express, and an
:meth:`Compiler.emit` that writes the output.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from zenml_bridge import ir


@dataclass(frozen=True, slots=True, kw_only=True)
class CompileOptions:
    """What the ``compile`` command passes to every compiler."""

    out: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    strict: bool = False
    image: str | None = None
    operator: str = "bash"
    executor: str = "container"
    code_archive: bool = True
    #: Where workers find the stored IR and code archive (set by the CLI after publishing).
    ir_uri: str | None = None
    ir_sha256: str | None = None
    code_archive_uri: str | None = None
    code_archive_sha256: str | None = None
    #: Store URLs baked into the generated file for workers (None: workers use their own env).
    metadata_url: str | None = None
    artifact_root: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something the target cannot express. ``step`` is None for pipeline-wide settings."""

    severity: Literal["error", "warning"]
    step: str | None
    setting: str
    message: str

    def __str__(self) -> str:
        where = f"step '{self.step}'" if self.step else "the pipeline"
        return f"{self.severity}: {where}, {self.setting}: {self.message}"


class UnsupportedError(ir.BridgeError):
    """Every problem of one compile, reported together."""

    def __init__(self, target: str, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = [f"Cannot compile for {target}: {len(self.problems)} problem(s)."]
        lines += [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class CompileResult:
    """The files a compile wrote and notes for the user (printed by the CLI)."""

    paths: tuple[Path, ...]
    notes: tuple[str, ...] = ()
    warnings: tuple[Problem, ...] = ()


Pass = Callable[[ir.Pipeline, CompileOptions], ir.Pipeline]


def apply_parameter_defaults(pipeline: ir.Pipeline, options: CompileOptions) -> ir.Pipeline:
    """``-p key=value`` at compile time becomes the parameter's default in the output."""
    if not options.parameters:
        return pipeline
    ir.check_run_parameters(
        dataclasses.replace(
            pipeline,
            parameters=tuple(dataclasses.replace(p, required=False) for p in pipeline.parameters),
        ),
        options.parameters,
    )
    return dataclasses.replace(
        pipeline,
        parameters=tuple(
            dataclasses.replace(p, default=options.parameters[p.name], required=False)
            if p.name in options.parameters
            else p
            for p in pipeline.parameters
        ),
    )


class Compiler:
    """Base of all compilers; subclasses set :attr:`target` and override :meth:`emit`."""

    target: ClassVar[str] = ""
    SUPPORTS_SCHEDULE: ClassVar[bool] = False
    SUPPORTS_RESOURCES: ClassVar[bool] = False
    SUPPORTS_RETRIES: ClassVar[bool] = False
    SUPPORTS_TIMEOUT: ClassVar[bool] = False
    passes: ClassVar[tuple[Pass, ...]] = (apply_parameter_defaults,)

    def check(self, pipeline: ir.Pipeline, options: CompileOptions) -> list[Problem]:
        """Problems the target has with the pipeline; the default checks capability flags."""
        problems = []
        if pipeline.schedule and not self.SUPPORTS_SCHEDULE:
            problems.append(
                Problem("warning", None, "schedule", f"{self.target} ignores schedules")
            )
        for step in pipeline.steps:
            if step.retry.max_retries and not self.SUPPORTS_RETRIES:
                problems.append(Problem("warning", step.name, "retries", "not supported"))
            if step.timeout_s and not self.SUPPORTS_TIMEOUT:
                problems.append(Problem("warning", step.name, "timeout", "not supported"))
            if (step.resources != ir.Resources()) and not self.SUPPORTS_RESOURCES:
                problems.append(Problem("warning", step.name, "resources", "not supported"))
        return problems

    def emit(self, pipeline: ir.Pipeline, options: CompileOptions) -> CompileResult:
        raise NotImplementedError

    def compile(self, pipeline: ir.Pipeline, options: CompileOptions) -> CompileResult:
        """Apply the passes, collect problems (raise on errors, or warnings under strict), emit."""
        for apply in self.passes:
            pipeline = apply(pipeline, options)
        problems = self.check(pipeline, options)
        fatal = [p for p in problems if p.severity == "error" or options.strict]
        if fatal:
            raise UnsupportedError(self.target, problems)
        result = self.emit(pipeline, options)
        return dataclasses.replace(result, warnings=tuple(problems))


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write a file so that readers see the old content or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
