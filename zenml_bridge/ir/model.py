"""The pipeline IR: small frozen values, the single description of a pipeline.

The DSL produces these values, compilers and the runtime consume them. Change one with
``dataclasses.replace``; serialize with :func:`zenml_bridge.ir.to_json`.

The values are really immutable: the mappings and JSON values they hold (``env``,
``settings``, ``hooks``, ``defaults``, parameter defaults, constant inputs) are frozen on
construction into :class:`FrozenDict` / :class:`FrozenList`, which still are ``dict`` / ``list``
(so ``json.dumps``, ``isinstance`` and ``{**x}`` keep working) but refuse every in-place change.
An IR value therefore hashes, and its sha256 cannot go stale behind a cache.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

IR_VERSION = "1"

#: A JSON value (None, bool, int, float, str, list, dict with str keys).
JSON = Any

InputKind = Literal["parameter", "output", "constant"]

#: What a step's ``code_hash`` covers (``@step(cache_code=...)``); see docs/runtime.md.
CodePolicy = Literal["function", "module", "project"]

#: Field metadata: leave the field out of the JSON while it has its default, so documents
#: written before the field existed keep their bytes and sha256.
OMIT_DEFAULT = {"omit_default": True}


def _refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(
        f"{type(self).__name__} is immutable (part of a frozen pipeline IR); "
        "build a new value with dataclasses.replace"
    )


class FrozenDict(dict):  # type: ignore[type-arg]
    """A ``dict`` that refuses changes and can be hashed (a frozen IR's mappings)."""

    __slots__ = ()
    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda item: str(item[0]))))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: Any) -> FrozenDict:
        return self


class FrozenList(list):  # type: ignore[type-arg]
    """A ``list`` that refuses changes and can be hashed (JSON arrays in a frozen IR)."""

    __slots__ = ()
    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = _refuse
    sort = reverse = __iadd__ = __imul__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: Any) -> FrozenList:
        return self


def freeze(value: Any) -> Any:
    """A deep immutable copy of JSON-like data: dicts become FrozenDict, lists FrozenList."""
    if isinstance(value, FrozenDict | FrozenList):
        return value
    if isinstance(value, dict):
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return FrozenList(freeze(item) for item in value)
    return value


def _tuple_fields(obj: Any, names: Iterable[str]) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, list):  # a list given by hand: keep the declared tuple
            object.__setattr__(obj, name, tuple(value))


def _freeze_fields(obj: Any, names: Iterable[str]) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, dict | list | tuple) and not isinstance(
            value, FrozenDict | FrozenList
        ):
            object.__setattr__(obj, name, freeze(value))


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
    description: str = field(default="", metadata=OMIT_DEFAULT)

    def __post_init__(self) -> None:
        _freeze_fields(self, ("default",))


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

    def __post_init__(self) -> None:
        _freeze_fields(self, ("value",))

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
    #: What ``code_hash`` covers; "function" (the default) is how documents written before
    #: the field existed were hashed.
    cache_code: CodePolicy = field(default="function", metadata=OMIT_DEFAULT)
    #: sha256 of the installed versions of the distributions the step module imports
    #: (``@step(cache_env=True)``), part of the cache key; empty when not asked for.
    cache_env_hash: str = field(default="", metadata=OMIT_DEFAULT)

    def __post_init__(self) -> None:
        _freeze_fields(self, ("env", "settings", "hooks"))
        _tuple_fields(self, ("inputs", "outputs", "after"))

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

    def __post_init__(self) -> None:
        _freeze_fields(self, ("defaults", "settings"))
        _tuple_fields(self, ("parameters", "steps"))

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
