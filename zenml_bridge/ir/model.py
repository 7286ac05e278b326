"""The pipeline IR: small frozen values, the single description of a pipeline.

The DSL produces these values, compilers and the runtime consume them. Change one with
``dataclasses.replace``; serialize with :func:`zenml_bridge.ir.to_json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

IR_VERSION = "1"

#: A JSON value (None, bool, int, float, str, list, dict with str keys).
JSON = Any

InputKind = Literal["parameter", "output", "constant"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Parameter:
    """A pipeline parameter: overridable per run (`-p key=value`, Airflow params, KFP inputs)."""

    name: str
    type: str = "Any"
    default: JSON = None
    required: bool = False
    #: For people (Airflow's trigger form, KFP input descriptions); from the pipeline docstring's
    #: ``Args:`` section. Left out of the canonical JSON while empty, so adding the field
    #: changed no existing pipeline's sha256.
    description: str = field(default="", metadata={"omit_empty": True})


@dataclass(frozen=True, slots=True, kw_only=True)
class InputRef:
    """Where one argument of a step comes from.

    ``kind`` says which of the other fields is set: ``parameter`` (a pipeline parameter),
    ``output`` (``step`` and ``output`` of an upstream step) or ``constant`` (``value``).
    """

    name: str
    kind: InputKind
    type: str = "Any"
    parameter: str | None = None
    step: str | None = None
    output: str | None = None
    value: JSON = None

    @classmethod
    def of_parameter(cls, name: str, parameter: str, type: str = "Any") -> InputRef:
        return cls(name=name, kind="parameter", type=type, parameter=parameter)

    @classmethod
    def of_output(cls, name: str, step: str, output: str, type: str = "Any") -> InputRef:
        return cls(name=name, kind="output", type=type, step=step, output=output)

    @classmethod
    def of_constant(cls, name: str, value: JSON, type: str = "Any") -> InputRef:
        return cls(name=name, kind="constant", type=type, value=value)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputSpec:
    """One output of a step. ``materializer`` is None when the runtime picks it by type."""

    name: str
    type: str = "Any"
    materializer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    """What a step asks of its worker. Kubernetes quantities: ``cpu="500m"``, ``memory="2Gi"``."""

    cpu: str | None = None
    memory: str | None = None
    gpu: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retries of a failed step: delay before retry n is ``delay_s * backoff_factor**(n-1)``."""

    max_retries: int = 0
    delay_s: float = 10.0
    backoff_factor: float = 1.0
    max_delay_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One step invocation in a pipeline."""

    name: str
    source: str
    source_file: str
    source_line: int
    code_hash: str
    description: str = ""
    inputs: tuple[InputRef, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    after: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cache: bool = True
    cache_salt: str = ""
    timeout_s: float | None = None
    resources: Resources = field(default_factory=Resources)
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    allow_pickle: bool = False
    settings: dict[str, dict[str, JSON]] = field(default_factory=dict)
    hooks: dict[str, str] = field(default_factory=dict)

    @property
    def upstream(self) -> tuple[str, ...]:
        """Names of the steps this one waits for (data edges and ``after=``), sorted."""
        names = {ref.step for ref in self.inputs if ref.kind == "output" and ref.step}
        names.update(self.after)
        return tuple(sorted(names))

    def output(self, name: str) -> OutputSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pipeline:
    """A whole pipeline. Steps are stored in a topological order."""

    ir_version: str = IR_VERSION
    name: str
    source: str
    source_file: str
    source_line: int
    description: str = ""
    parameters: tuple[Parameter, ...] = ()
    schedule: str | None = None
    defaults: dict[str, JSON] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()
    settings: dict[str, dict[str, JSON]] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        for candidate in self.steps:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)

    def downstream(self, name: str) -> tuple[str, ...]:
        """Names of the steps that wait for ``name``."""
        return tuple(step.name for step in self.steps if name in step.upstream)

    def resolve_parameters(self, overrides: dict[str, JSON] | None = None) -> dict[str, JSON]:
        """Parameter values of a run: the defaults, replaced by ``overrides``.

        Unknown and missing names are reported by :func:`zenml_bridge.ir.check_run_parameters`.
        """
        values = {p.name: p.default for p in self.parameters if not p.required}
        values.update(overrides or {})
        return values
