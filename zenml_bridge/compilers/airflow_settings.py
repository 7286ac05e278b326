"""Checks of the ``airflow`` target that concern settings and the dags folder, not the file.

- ``settings={"airflow": {...}}`` of a ``@step`` (task keys) and a ``@pipeline`` (DAG keys, and
  task keys as defaults of every task): known keys, profiles and JSON types;
- what Airflow itself would refuse when it parses the DAG: a schedule with required parameters;
- the dags folder: a dag_id that another source already uses there.

All of them run before anything is stored or written (``Compiler.prepare``).
"""

from __future__ import annotations

import ast
import datetime
import re
from pathlib import Path
from typing import Any

from zenml_bridge import ir
from zenml_bridge.compilers.base import Problem

FILE_PREFIX = "zenml_bridge__"
#: The DAG param that makes a run skip cache look-ups (reserved: no pipeline parameter has it).
NO_CACHE_PARAM = "no_cache"

#: Per-step ``settings={"airflow": {...}}`` keys: the profiles that take each, and its JSON type.
STEP_SETTINGS: dict[str, tuple[tuple[str, ...], str]] = {
    "pool": (("bash", "kubernetes", "docker"), "str"),
    "queue": (("bash", "kubernetes", "docker"), "str"),
    "priority_weight": (("bash", "kubernetes", "docker"), "int"),
    "namespace": (("kubernetes",), "str"),
    "service_account_name": (("kubernetes",), "str"),
    "image_pull_policy": (("kubernetes",), "str"),
    "node_selector": (("kubernetes",), "dict[str, str]"),
    "labels": (("kubernetes",), "dict[str, str]"),
    "annotations": (("kubernetes",), "dict[str, str]"),
    "startup_timeout_seconds": (("kubernetes",), "int"),
    # A Kubernetes Secret whose keys become the pod's environment (store URLs, credentials).
    "env_from_secret": (("kubernetes",), "k8s name"),
    "docker_url": (("docker",), "str"),
    "network_mode": (("docker",), "str"),
    "user": (("docker",), "str"),
    "shm_size": (("docker",), "int"),
}
#: Pipeline ``settings={"airflow": {...}}`` keys that configure the DAG, and their JSON type.
#: Task keys (above) given for the pipeline are defaults of every task.
DAG_SETTINGS: dict[str, str] = {
    "tags": "list[str]",
    "max_active_runs": "int",
    "max_active_tasks": "int",
    "max_consecutive_failed_dag_runs": "int",
    "owner": "str",
    "start_date": "ISO date",
    "dagrun_timeout": "seconds",
    "on_failure_callback": "module:function",
    "on_success_callback": "module:function",
    "email": "str or list[str]",
    "email_on_failure": "bool",
    "email_on_retry": "bool",
}
#: DAG settings that Airflow takes as task defaults (``default_args``), not DAG arguments.
DEFAULT_ARGS = ("owner", "email", "email_on_failure", "email_on_retry")

_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_CALLABLE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_DAG_ID_LITERAL = r"""(?:dag_id\s*=\s*|\bDAG\(\s*)(['"]){name}\1"""


def error(step: str | None, setting: str, message: str) -> Problem:
    return Problem("error", step, setting, message)


def check_pipeline_settings(pipeline: ir.Pipeline, profile: str) -> list[Problem]:
    """Every problem of the pipeline's ``settings["airflow"]`` (DAG keys and task defaults)."""
    problems = []
    settings = pipeline.settings.get("airflow", {})
    for key, value in settings.items():
        if key in DAG_SETTINGS and not is_type(value, DAG_SETTINGS[key]):
            problems.append(
                error(None, f"settings.airflow.{key}", f"must be {_kind(key)}, got {value!r:.60}")
            )
    task_defaults = {k: v for k, v in settings.items() if k not in DAG_SETTINGS}
    return problems + check_task_settings(None, task_defaults, profile)


def _kind(key: str) -> str:
    examples = {
        "ISO date": "an ISO date or date-time, like '2025-01-31' or '2025-01-31T06:00:00+00:00'",
        "seconds": "a number of seconds above 0",
        "module:function": "an importable 'package.module:function'",
    }
    kind = DAG_SETTINGS[key]
    return examples.get(kind, kind)


def check_task_settings(step: str | None, settings: dict[str, Any], profile: str) -> list[Problem]:
    problems = []
    for key, value in settings.items():
        where = f"settings.airflow.{key}"
        if key not in STEP_SETTINGS:
            known = [*STEP_SETTINGS, *(DAG_SETTINGS if step is None else ())]
            hint = ir.did_you_mean(key, known)
            problems.append(
                error(step, where, f"unknown Airflow setting.{hint} Known: {', '.join(known)}.")
            )
            continue
        profiles, type_name = STEP_SETTINGS[key]
        if profile not in profiles:
            message = f"only the {' and '.join(profiles)} profile takes it, not {profile}"
            problems.append(error(step, where, message))
        elif not is_type(value, type_name):
            problems.append(error(step, where, f"must be {type_name}, got {value!r:.60}"))
    return problems


def check_parameters(pipeline: ir.Pipeline) -> list[Problem]:
    """What Airflow refuses when it parses the DAG, and the reserved ``no_cache`` param."""
    problems = []
    required = [p.name for p in pipeline.parameters if p.required]
    if pipeline.schedule is not None and required:
        example = " ".join(f"-p {name}=VALUE" for name in required)
        problems.append(
            error(
                None,
                "schedule",
                f"a scheduled DAG run has nobody to give the required parameter(s) "
                f"{', '.join(required)}, and Airflow refuses to load such a DAG. Give them "
                f"values at compile time ({example}), defaults in the pipeline, or drop the "
                "schedule.",
            )
        )
    if any(p.name == NO_CACHE_PARAM for p in pipeline.parameters):
        problems.append(
            error(
                None,
                f"parameters.{NO_CACHE_PARAM}",
                f"'{NO_CACHE_PARAM}' is the DAG param that re-runs steps without the cache on "
                "Airflow. Rename the pipeline parameter.",
            )
        )
    return problems


def dag_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The DAG-level settings as the template takes them (``default_args`` apart)."""
    return {
        k: v for k, v in settings.items() if k in DAG_SETTINGS and k not in ("tags", *DEFAULT_ARGS)
    }


def default_args(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k in DEFAULT_ARGS}


def is_type(value: Any, type_name: str) -> bool:
    if type_name == "str":
        return isinstance(value, str)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "k8s name":
        return isinstance(value, str) and bool(_K8S_NAME.fullmatch(value))
    if type_name == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if type_name == "str or list[str]":
        return isinstance(value, str) or is_type(value, "list[str]")
    if type_name == "dict[str, str]":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if type_name == "seconds":
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and 0 < value < float("inf")
    if type_name == "module:function":
        return isinstance(value, str) and bool(_CALLABLE.fullmatch(value))
    if type_name == "ISO date":
        return isinstance(value, str) and parse_start_date(value) is not None
    raise ValueError(type_name)


def parse_start_date(text: str) -> datetime.datetime | None:
    """An aware datetime (UTC when no offset is given), or None when ``text`` is no ISO date."""
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


# -- the dags folder ----------------------------------------------------------------------------


def dag_id_owner(folder: Path, dag_id: str, origin: str) -> str | None:
    """What else in ``folder`` defines ``dag_id``, or None when nothing does (or only we do).

    Our file for the dag_id is recognised by its ``PIPELINE`` literal: the same origin (the same
    pipeline of the same project) is a recompile, not a clash. Other files are searched for
    ``dag_id="..."`` / ``DAG("...")`` literals, which is how DAG files name DAGs.
    """
    if not folder.is_dir():
        return None
    ours = folder / f"{FILE_PREFIX}{dag_id}.py"
    if ours.is_file():
        other = _recorded_origin(ours)
        if other and other != origin:
            return f"{ours} (compiled from {other})"
    pattern = re.compile(_DAG_ID_LITERAL.format(name=re.escape(dag_id)))
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder).parts
        if path.name.startswith(FILE_PREFIX) or any(p.startswith(".") for p in relative):
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if pattern.search(text):
            return f"{path} (a DAG file not written by zenml-bridge)"
    return None


# A Python string literal as repr() writes it (single or double quotes, escapes, one line).
_STRING = r"'(?:[^'\\\n]|\\.)*'" + "|" + r'"(?:[^"\\\n]|\\.)*"'
_ORIGIN = re.compile(rf"^PIPELINE = \{{\s*'dag_id': (?:{_STRING}),\s*'origin': ({_STRING}),", re.M)


def _recorded_origin(path: Path) -> str | None:
    """The ``origin`` of one of our DAG files (the literal's second key, read without parsing
    the whole file: a 1,000-step literal takes a while), or None for an older file."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            head = handle.read(64 * 1024)
    except OSError:
        return None
    match = _ORIGIN.search(head)
    if match is None:
        return None
    value = ast.literal_eval(match.group(1))
    return value if isinstance(value, str) else None
