"""What every compiler shares: options, the problem report, IR passes and atomic writes.

A compiler is a small class: capability flags, a list of pure IR-to-IR passes, a
:meth:`Compiler.check` that collects everything the target cannot express, and an
:meth:`Compiler.emit` that writes the output.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal

from zenml_bridge import ir
from zenml_bridge.redact import redact_text, redact_url, url_has_credentials


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
    #: The stack's component config published for workers (set by the CLI after publishing).
    components_uri: str | None = None
    components_sha256: str | None = None
    #: ``(kind, flavor)`` of the stack's components that work only on this machine
    #: (``StackComponent.local_only``); a target whose steps run on workers refuses them.
    local_only_components: tuple[tuple[str, str], ...] = ()
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


@dataclass(frozen=True, slots=True)
class Prepared:
    """A pipeline after the compiler's passes, with the problems found (none of them fatal)."""

    pipeline: ir.Pipeline
    problems: tuple[Problem, ...]


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
    #: Steps run on workers (other processes, machines or pods), not on the compiling machine.
    RUNS_ON_WORKERS: ClassVar[bool] = False
    passes: ClassVar[tuple[Pass, ...]] = (apply_parameter_defaults,)

    def check(self, pipeline: ir.Pipeline, options: CompileOptions) -> list[Problem]:
        """Problems the target has with the pipeline; the default checks capability flags."""
        problems = self.shared_problems(pipeline, options)
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

    def shared_problems(self, pipeline: ir.Pipeline, options: CompileOptions) -> list[Problem]:
        """What every target checks: the steps' integration settings blocks (invalid values
        are errors, unknown blocks warnings) and, where steps run on workers, the stack's
        local-only components."""
        from zenml_bridge.settings import check_blocks

        errors, warnings = check_blocks((step.name, step.settings) for step in pipeline.steps)
        problems = [Problem("error", s, f"settings.{key}", m) for s, key, m in errors]
        problems += [Problem("warning", s, f"settings.{key}", m) for s, key, m in warnings]
        if not self.RUNS_ON_WORKERS:
            return problems
        if options.components_uri and not re.fullmatch(
            r"[0-9a-f]{64}", str(options.components_sha256 or "")
        ):
            problems.append(
                Problem("error", None, "components_sha256",
                        "a component config URI needs the config's sha256")
            )  # fmt: skip
        return problems + [
            Problem(
                "error",
                None,
                f"components.{kind}",
                f"the {kind} flavor '{flavor}' works only on this machine (local_only), but "
                f"{self.target} runs steps on workers. Use a flavor that workers can reach, or "
                "compile with a stack without it (`zenml-bridge stack set NAME`)",
            )
            for kind, flavor in options.local_only_components
        ]

    def emit(self, pipeline: ir.Pipeline, options: CompileOptions) -> CompileResult:
        raise NotImplementedError

    def output_folder(self, pipeline: ir.Pipeline, options: CompileOptions) -> Path:
        """The folder :meth:`emit` writes into (checked by :meth:`preflight`)."""
        return options.out if options.out.is_dir() else options.out.parent

    def preflight(self, pipeline: ir.Pipeline, options: CompileOptions) -> None:
        """Refuse what would make :meth:`emit` fail whatever the pipeline holds: a missing
        package of the target, an output folder that cannot be written. Runs before anything is
        published; raises :class:`BridgeError`."""
        check_writable_folder(self.output_folder(pipeline, options))

    def prepare(self, pipeline: ir.Pipeline, options: CompileOptions) -> Prepared:
        """Preflight, passes and checks: raises when the compile cannot succeed (errors, or
        warnings under strict), so that a caller can publish and then :meth:`finish`."""
        check_no_secrets_in_urls(options, pipeline)
        self.preflight(pipeline, options)
        for apply in self.passes:
            pipeline = apply(pipeline, options)
        problems = self.check(pipeline, options)
        if any(p.severity == "error" or options.strict for p in problems):
            raise UnsupportedError(self.target, problems)
        return Prepared(pipeline, tuple(problems))

    def finish(self, prepared: Prepared, options: CompileOptions) -> CompileResult:
        """Emit a prepared pipeline; ``options`` may add the published references."""
        check_no_secrets_in_urls(options, prepared.pipeline)
        result = self.emit(prepared.pipeline, options)
        return dataclasses.replace(result, warnings=prepared.problems)

    def compile(self, pipeline: ir.Pipeline, options: CompileOptions) -> CompileResult:
        """Apply the passes, collect problems (raise on errors, or warnings under strict), emit."""
        return self.finish(self.prepare(pipeline, options), options)


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write a file so that readers see the old content or the new one, never a part.

    Raises:
        BridgeError: the file cannot be written (the message names the path and the reason).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _unwritable(f"Cannot write {path}", exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unwritable(f"Cannot write {path}", exc) from None
        raise
    return path


def check_writable_folder(folder: Path) -> None:
    """Raise a BridgeError unless files can be created in ``folder`` (made on write if missing).

    Probes the nearest existing folder with a temporary file that is removed at once, so a
    refused output is found before anything is published, and nothing is left behind.
    """
    existing = Path(os.path.abspath(folder))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ir.BridgeError(
            f"Cannot write into {folder}: {existing} is a file, not a folder. "
            "Pass an --out path in a folder you can write to."
        )
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".zenml_bridge-probe.", suffix=".tmp")
    except OSError as exc:
        raise _unwritable(f"Cannot write into {folder}", exc) from None
    os.close(fd)
    os.unlink(probe)


def _unwritable(what: str, exc: OSError) -> ir.BridgeError:
    reason = exc.strerror or type(exc).__name__
    return ir.BridgeError(f"{what}: {reason}. Pass an --out path in a folder you can write to.")


# -- Kubernetes quantities -------------------------------------------------------------------

# Kubernetes' resource.Quantity grammar: a signed number (``1``, ``1.5``, ``.5``, ``5.``), then a
# binary suffix (Ki..Ei), a decimal one (n, u, m, k, M..E) or a decimal exponent (e3, E-2).
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<binary>[KMGTPE]i)|(?P<exponent>[eE][+-]?\d+)|(?P<decimal>[numkMGTPE]))?"
)
_DECIMAL_SUFFIX = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIX = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}


def parse_quantity(text: str) -> Decimal | None:
    """The value of a Kubernetes quantity (``"500m"`` -> 0.5, ``"1Gi"`` -> 2**30), else None.

    Example:
        >>> parse_quantity(".5"), parse_quantity("1e3"), parse_quantity("2 cores")
        (Decimal('0.5'), Decimal('1E+3'), None)
    """
    match = _QUANTITY.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    number = Decimal(match["number"])
    if match["binary"]:
        return number * Decimal(2) ** _BINARY_SUFFIX[match["binary"]]
    if match["exponent"]:
        exponent = int(match["exponent"][1:])
        return number.scaleb(exponent) if abs(exponent) <= 100 else None
    if match["decimal"]:
        return number.scaleb(_DECIMAL_SUFFIX[match["decimal"]])
    return number


def quantity_problem(step: str, setting: str, value: object) -> Problem | None:
    """An error when ``value`` is not a non-negative Kubernetes quantity (for cpu / memory)."""
    parsed = parse_quantity(value) if isinstance(value, str) else None
    if parsed is not None and parsed >= 0:
        return None
    like = "'500m', '2', '.5'" if setting == "cpu" else "'512Mi', '2Gi', '1G'"
    return Problem(
        "error",
        step,
        setting,
        f"{value!r} is not a non-negative Kubernetes quantity (like {like}); fix the @step option",
    )


# -- secrets ---------------------------------------------------------------------------------

#: Option -> what it is, and where workers get it instead (the published IR's and code archive's
#: URIs lie under the artifact root: credentials in the root reach the file through them).
_URL_SOURCES = {
    "metadata_url": ("metadata URL", "ZENML_BRIDGE_METADATA_URL"),
    "artifact_root": ("artifact root", "ZENML_BRIDGE_ARTIFACT_ROOT"),
    "ir_uri": ("artifact root", ""),
    "code_archive_uri": ("artifact root", ""),
    "components_uri": ("artifact root", ""),
}
_SECRET_HOW = (
    "e.g. from a Kubernetes Secret (Airflow: step setting 'env_from_secret'; Kubeflow: "
    "settings['kubernetes']['secret_env'])"
)


def url_has_password(url: str) -> bool:
    """True when a URL carries a credential (``user:pw@host``, ``?password=``, a token)."""
    return url_has_credentials(url)


def check_no_secrets_in_urls(options: CompileOptions, pipeline: ir.Pipeline | None = None) -> None:
    """Refuse credentials on their way into a generated file: generated files are world-readable
    (0644) and are uploaded to schedulers and UIs, so credentials must reach workers another way.

    Checks the store URLs of ``options``, the published IR and code-archive URIs (derived from
    the artifact root) and, with ``pipeline``, URLs in the steps' ``env`` values.

    Raises:
        BridgeError: naming the URL (redacted), where it came from and how to pass it instead.
    """
    for attribute, (what, env) in _URL_SOURCES.items():
        url = str(getattr(options, attribute) or "")
        if not url or not url_has_credentials(url):
            continue
        if env:
            raise ir.BridgeError(
                f"CompileOptions.{attribute} contains a password ({redact_url(url)}), and the "
                "generated file would show it to anyone who can read it. Leave it out of the "
                f"compile and give workers the URL as {env} in their environment, {_SECRET_HOW}."
            )
        # The IR and code archive are read from URIs under the artifact root, written into the
        # file: the root itself must be free of credentials.
        raise ir.BridgeError(
            f"The {what} {redact_url(url.partition('/.zenml_bridge/')[0])} contains credentials, "
            "and the generated file would show them to anyone who can read it (the stored IR's "
            "URI is under it). Use an artifact root without credentials "
            "(ZENML_BRIDGE_ARTIFACT_ROOT or the stack's artifact_root) and give this machine and "
            "the workers the credentials through the store's own environment variables "
            f"(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for s3://, ...), {_SECRET_HOW}."
        )
    for step in pipeline.steps if pipeline is not None else ():
        for name, value in sorted(step.env.items()):
            if isinstance(value, str) and redact_text(value) != value:
                raise ir.BridgeError(
                    f"Step '{step.name}' env {name} holds a URL with credentials "
                    f"({redact_text(value)}), and the generated file would show them to anyone "
                    f"who can read it. Set it in the workers' environment instead, "
                    f"{_SECRET_HOW}."
                )
