"""The ``airflow`` target: one DAG file that Airflow 2.10+/3.x loads from its dags folder.

The file is a fixed template (``zenml_bridge/templates/airflow/dag.py.tmpl``) plus ONE Python
literal, ``PIPELINE``, holding all pipeline data. Each task runs one step through
``python -m zenml_bridge.entrypoint run-step`` with the IR passed by reference (URI + sha256).
Three operator profiles: ``bash`` (the worker's own Python), ``kubernetes``
(KubernetesPodOperator) and ``docker`` (DockerOperator).

Example:
    >>> from zenml_bridge.compilers.airflow import AirflowCompiler
    >>> options = CompileOptions(out=Path("dags"), ir_uri="s3://b/ir/ab.json",  # doctest: +SKIP
    ...                          ir_sha256="ab...")
    >>> AirflowCompiler().compile(pipeline_ir, options).paths     # doctest: +SKIP
    (PosixPath('dags/zenml_bridge__training.py'),)
"""

from __future__ import annotations

import ast
import math
import re
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

from zenml_bridge import ir
from zenml_bridge.compilers.airflow_settings import (
    DAG_SETTINGS,
    FILE_PREFIX,
    STEP_SETTINGS,
    check_parameters,
    check_pipeline_settings,
    check_task_settings,
    dag_id_owner,
    dag_settings,
    default_args,
)
from zenml_bridge.compilers.base import (
    CompileOptions,
    Compiler,
    CompileResult,
    Problem,
    parse_quantity,
    quantity_problem,
    write_atomic,
)

__all__ = ["DAG_SETTINGS", "FILE_PREFIX", "STEP_SETTINGS", "AirflowCompiler", "dag_id_of"]

PLACEHOLDER = "PIPELINE = __PIPELINE__\n"
DEFAULT_TAG = "zenml-bridge"
SCHEDULE_PRESETS = tuple(
    "@once @continuous @hourly @daily @weekly @monthly @quarterly @yearly".split()
)
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,?#-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DAG_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")


class AirflowCompiler(Compiler):
    """Compiles a pipeline into ``DAGS_DIR/zenml_bridge__<dag_id>.py``."""

    target = "airflow"
    SUPPORTS_SCHEDULE = True
    SUPPORTS_RETRIES = True
    SUPPORTS_TIMEOUT = True
    SUPPORTS_RESOURCES = True  # per profile, see PROFILE_SUPPORTS
    RUNS_ON_WORKERS = True
    #: What each operator profile can express besides retries, timeouts and env.
    PROFILE_SUPPORTS: ClassVar[dict[str, frozenset[str]]] = {
        "bash": frozenset(),
        "kubernetes": frozenset({"image", "cpu", "memory", "gpu"}),
        "docker": frozenset({"image", "cpu", "memory", "gpu"}),
    }

    # -- checks ------------------------------------------------------------------------------

    def check(self, pipeline: ir.Pipeline, options: CompileOptions) -> list[Problem]:
        """Every problem of the compile at once: errors, and warnings (errors under --strict)."""
        profile = options.operator
        if profile not in self.PROFILE_SUPPORTS:
            hint = ir.did_you_mean(profile, self.PROFILE_SUPPORTS)
            known = ", ".join(self.PROFILE_SUPPORTS)
            return [_error(None, "operator", f"unknown profile {profile!r}.{hint} Use {known}.")]
        problems = super().check(pipeline, options)
        problems += _check_references(options)
        problems += _check_pipeline(pipeline, profile)
        problems += _check_dag_id(pipeline, options)
        if options.image and profile == "bash":
            problems.append(
                _warning(
                    None,
                    "image",
                    f"--image {options.image!r} is ignored: the bash profile runs steps in the "
                    "Airflow worker's own environment. Use --operator kubernetes or docker.",
                )
            )
        for step in pipeline.steps:
            problems += self._check_step(step, profile, options)
        return problems

    def _check_step(self, step: ir.Step, profile: str, options: CompileOptions) -> list[Problem]:
        supports = self.PROFILE_SUPPORTS[profile]
        fix = "Compile with --operator kubernetes or --operator docker, or remove the setting."
        problems: list[Problem] = []

        def error(setting: str, message: str) -> None:
            problems.append(_error(step.name, setting, message))

        if "image" not in supports and step.image:
            error(
                "image",
                f"the {profile} profile runs steps in the Airflow worker's environment and "
                f"cannot use the image {step.image!r}. {fix}",
            )
        if "image" in supports and not (step.image or options.image):
            error("image", f"the {profile} profile needs an image: pass --image or @step(image=).")
        requested = {
            "cpu": step.resources.cpu,
            "memory": step.resources.memory,
            "gpu": step.resources.gpu or None,
        }
        for setting, value in requested.items():
            if value is None:
                continue
            if setting not in supports:
                error(setting, f"the {profile} profile cannot reserve {value!r} for a step. {fix}")
            elif setting != "gpu" and (problem := quantity_problem(step.name, setting, value)):
                problems.append(problem)
        for key, value in step.env.items():
            if not _ENV_NAME.fullmatch(key):
                error(f"env.{key}", "is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
            elif "\0" in value:
                error(f"env.{key}", "contains a NUL character, which no environment can hold")
        if step.retry.max_retries and step.retry.backoff_factor not in (1.0, 2.0):
            problems.append(
                _warning(
                    step.name,
                    "retry_backoff",
                    f"Airflow 3 multiplies the retry delay by {step.retry.backoff_factor:g}; "
                    "Airflow 2 can only double it (retry_exponential_backoff=True).",
                )
            )
        problems += check_task_settings(step.name, step.settings.get("airflow", {}), profile)
        return problems

    # -- emit --------------------------------------------------------------------------------

    def output_folder(self, pipeline: ir.Pipeline, options: CompileOptions) -> Path:
        """``--out`` is the dags folder itself."""
        out = Path(options.out)
        if out.is_file() or out.suffix == ".py":
            raise ir.BridgeError(
                f"--out {out} must be the Airflow dags folder, not a file: the DAG is written "
                f"to <folder>/{FILE_PREFIX}{pipeline.name}.py."
            )
        return out

    def emit(self, pipeline: ir.Pipeline, options: CompileOptions) -> CompileResult:
        """Write the DAG file atomically, after checking that it parses to the same data."""
        out = self.output_folder(pipeline, options)
        data = self.pipeline_data(pipeline, options)
        path = out / f"{FILE_PREFIX}{data['dag_id']}.py"
        write_atomic(path, render(data))
        notes = [f"dag_id {data['dag_id']}, {len(pipeline.steps)} task(s), IR {data['ir_uri']}"]
        if data["code_archive_uri"]:
            notes.append(f"code archive {data['code_archive_uri']}")
        if data["components_uri"]:
            notes.append(f"stack components {data['components_uri']}")
        stores = {k: v for k, v in data["stores"].items() if v}
        if stores and profile_is_bash(options):
            notes.append(
                "workers record into "
                + ", ".join(f"{k} {v}" for k, v in stores.items())
                + " (defaults: a worker's ZENML_BRIDGE_METADATA_URL / _ARTIFACT_ROOT win)"
            )
        return CompileResult(paths=(path,), notes=tuple(notes))

    def pipeline_data(self, pipeline: ir.Pipeline, options: CompileOptions) -> dict[str, Any]:
        """The ``PIPELINE`` literal of the generated file (plain JSON-like data)."""
        profile = options.operator
        settings = pipeline.settings.get("airflow", {})
        task_defaults = {k: v for k, v in settings.items() if k not in DAG_SETTINGS}
        tags = [DEFAULT_TAG, *[t for t in settings.get("tags", []) if t != DEFAULT_TAG]]
        return {
            "dag_id": dag_id_of(pipeline, options),
            "origin": origin_of(pipeline, options),
            "description": pipeline.description,
            "schedule": pipeline.schedule,
            "operator": profile,
            "python": options.extra.get("python"),
            "ir_uri": options.ir_uri,
            "ir_sha256": options.ir_sha256,
            "code_archive_uri": options.code_archive_uri if options.code_archive else None,
            "code_archive_sha256": options.code_archive_sha256 if options.code_archive else None,
            "components_uri": options.components_uri,
            "components_sha256": options.components_sha256,
            # Defaults: on the bash profile a worker's own ZENML_BRIDGE_* variables win.
            "stores": {
                "metadata_url": options.metadata_url,
                "artifact_root": options.artifact_root,
            },
            "tags": tags,
            "dag_settings": dag_settings(settings),
            "default_args": default_args(settings),
            "parameters": [
                {
                    "name": p.name,
                    "type": p.type,
                    "default": p.default,
                    "required": p.required,
                    "schema_type": _schema_type(p),
                    "description": p.description,
                }
                for p in pipeline.parameters
            ],
            "steps": [_step_data(s, profile, options, task_defaults) for s in pipeline.steps],
        }


def profile_is_bash(options: CompileOptions) -> bool:
    return options.operator == "bash"


def dag_id_of(pipeline: ir.Pipeline, options: CompileOptions) -> str:
    """The DAG id: ``--dag-id-prefix`` (``options.extra["dag_id_prefix"]``) plus the name."""
    return f"{options.extra.get('dag_id_prefix') or ''}{pipeline.name}"


def origin_of(pipeline: ir.Pipeline, options: CompileOptions) -> str:
    """Where the pipeline comes from; the CLI passes the absolute path of its file.

    Two compiles with the same origin are the same pipeline: the second replaces the first's
    DAG file. A different origin for the same dag_id is a clash (see ``_check_dag_id``).
    """
    return str(options.extra.get("origin") or pipeline.source)


def _check_dag_id(pipeline: ir.Pipeline, options: CompileOptions) -> list[Problem]:
    dag_id = dag_id_of(pipeline, options)
    prefix = options.extra.get("dag_id_prefix") or ""
    if not _DAG_ID.fullmatch(dag_id):
        return [
            _error(
                None,
                "dag_id_prefix",
                f"{prefix!r} makes the dag_id {dag_id!r}, which Airflow refuses: use letters, "
                "digits, '_', '.' and '-' (250 characters at most).",
            )
        ]
    if options.extra.get("force"):
        return []
    folder = Path(options.out)
    other = dag_id_owner(folder, dag_id, origin_of(pipeline, options))
    if other is None:
        return []
    return [
        _error(
            None,
            "dag_id",
            f"{dag_id!r} is already defined in the dags folder by {other}; writing this DAG "
            "would replace it or make Airflow load two DAGs of one id. Compile with "
            "--dag-id-prefix PREFIX to give this one its own id, or --force to replace it.",
        )
    ]


def _error(step: str | None, setting: str, message: str) -> Problem:
    return Problem("error", step, setting, message)


def _warning(step: str | None, setting: str, message: str) -> Problem:
    return Problem("warning", step, setting, message)


def _check_references(options: CompileOptions) -> list[Problem]:
    problems = []
    if not options.ir_uri:
        problems.append(
            _error(
                None,
                "ir_uri",
                "workers read the IR by reference, but no IR URI was given. Compile with "
                "`zenml-bridge compile`, which stores the IR in the artifact store, or set "
                "CompileOptions.ir_uri and ir_sha256.",
            )
        )
    sha = options.ir_sha256
    if options.ir_uri and not _SHA256.fullmatch(str(sha or "")):
        problems.append(_error(None, "ir_sha256", f"{sha!r} is not the sha256 hex of the IR"))
    archive_sha = str(options.code_archive_sha256 or "")
    if options.code_archive and options.code_archive_uri and not _SHA256.fullmatch(archive_sha):
        problems.append(
            _error(None, "code_archive_sha256", "a code archive URI needs the archive's sha256")
        )
    return problems


def _check_pipeline(pipeline: ir.Pipeline, profile: str) -> list[Problem]:
    problems = []
    if pipeline.schedule is not None and not _valid_schedule(pipeline.schedule):
        problems.append(
            _error(
                None,
                "schedule",
                f"{pipeline.schedule!r} is neither a 5-field cron expression nor one of "
                f"{', '.join(SCHEDULE_PRESETS)}. Fix @pipeline(schedule=...).",
            )
        )
    return problems + check_parameters(pipeline) + check_pipeline_settings(pipeline, profile)


def _step_data(
    step: ir.Step, profile: str, options: CompileOptions, task_defaults: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": step.name,
        "k8s_name": ir.k8s_name(step.name),
        "description": step.description,
        "upstream": list(step.upstream),
        "retries": step.retry.max_retries,
        "retry_delay_s": step.retry.delay_s,
        "retry_backoff": step.retry.backoff_factor,
        "max_retry_delay_s": step.retry.max_delay_s,
        "timeout_s": step.timeout_s,
        "image": (step.image or options.image) if profile != "bash" else None,
        "env": dict(step.env),
        "resources": _resources(step.resources, profile),
        "settings": {**task_defaults, **step.settings.get("airflow", {})},
    }


def _resources(resources: ir.Resources, profile: str) -> dict[str, Any]:
    if profile == "kubernetes":
        requests = {k: v for k, v in (("cpu", resources.cpu), ("memory", resources.memory)) if v}
        limits: dict[str, str] = {"memory": resources.memory} if resources.memory else {}
        if resources.gpu:
            limits["nvidia.com/gpu"] = str(resources.gpu)
        return {"requests": requests, "limits": limits}
    if profile == "docker":
        # Checked quantities: cores (a float, as Docker takes them) and whole bytes, rounded up
        # the way Kubernetes rounds a fractional byte count.
        cpus = parse_quantity(resources.cpu) if resources.cpu else None
        memory = parse_quantity(resources.memory) if resources.memory else None
        return {
            "cpus": None if cpus is None else float(cpus),
            "mem_limit": None if memory is None else math.ceil(memory),
            "gpus": resources.gpu,
        }
    return {}


def _valid_schedule(schedule: str) -> bool:
    if schedule in SCHEDULE_PRESETS:
        return True
    fields = schedule.split()
    return len(fields) == 5 and all(_CRON_FIELD.fullmatch(f) for f in fields)


_SCHEMA_TYPES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean"}


def _schema_type(parameter: ir.Parameter) -> str | None:
    """The JSON-schema type Airflow's trigger form validates, when the default fits it."""
    base = parameter.type.split("[", 1)[0]
    if base in ("list", "tuple"):
        return "array" if isinstance(parameter.default, list) or parameter.required else None
    if base == "dict":
        return "object" if isinstance(parameter.default, dict) or parameter.required else None
    name = _SCHEMA_TYPES.get(parameter.type)
    if name is None:
        return None
    value = parameter.default
    fits = {
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
    }[name]
    return name if parameter.required or fits else None


# -- the generated file ----------------------------------------------------------------------


@cache
def template_text() -> str:
    """The fixed part of every generated file (shipped inside the package)."""
    resource = files("zenml_bridge").joinpath("templates", "airflow", "dag.py.tmpl")
    return resource.read_text(encoding="utf-8")


@cache
def _template_statements() -> int:
    return len(ast.parse(template_text()).body)


def render(data: dict[str, Any]) -> str:
    """The DAG file for ``data``: the template with ``PIPELINE`` set to its literal.

    The result is parsed back before it is returned: it must be the template's statements and
    nothing else, with a ``PIPELINE`` literal equal (types included) to ``data``.
    """
    template = template_text()
    source = template.replace(PLACEHOLDER, f"PIPELINE = {py_literal(data)}\n", 1)
    tree = ast.parse(source)
    expected = _template_statements()
    assigns = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["PIPELINE"]
    ]
    if len(tree.body) != expected or len(assigns) != 1:
        raise RuntimeError("generated DAG file does not have the template's shape")
    if not same_value(ast.literal_eval(assigns[0].value), data):
        raise RuntimeError("generated DAG file's PIPELINE literal does not round-trip")
    return source


def py_literal(value: Any, indent: int = 0, width: int = 99) -> str:
    """A Python literal of JSON-like data, wrapped readably; every string comes from ``repr``."""
    flat = _flat(value)
    if len(flat) + indent <= width or not isinstance(value, dict | list) or not value:
        return flat
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        items = [f"{pad}{k!r}: {py_literal(v, indent + 4, width)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + "\n" + " " * indent + "}"
    items = [f"{pad}{py_literal(v, indent + 4, width)}," for v in value]
    return "[\n" + "\n".join(items) + "\n" + " " * indent + "]"


def _flat(value: Any) -> str:
    if value is None or isinstance(value, bool | int | str):
        return repr(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} has no Python literal")
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("dict keys of pipeline data must be strings")
        return "{" + ", ".join(f"{k!r}: {_flat(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"{type(value).__name__} is not pipeline data")


def same_value(a: Any, b: Any) -> bool:
    """Equality that also compares types (``1``, ``1.0`` and ``True`` differ)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):  # the IR's frozen dicts are dicts too
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    return bool(a == b)
