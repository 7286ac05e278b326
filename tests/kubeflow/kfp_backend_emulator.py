"""Run a compiled PipelineSpec the way the KFP v2 backend runs it, on this machine.

``kfp.local`` is more forgiving than a cluster (it substitutes ``{{$.pipeline_job_uuid}}``
anywhere, ignores retry policies, ...). This harness follows the backend's own code instead,
read at tag ``2.17.0`` of github.com/kubeflow/pipelines (the backend released with the kfp 2.17
SDK we compile against; the parts used here are unchanged since 2.5.0 except where noted):

- ``backend/src/v2/compiler/argocompiler/argo.go`` (``Compile``): the run's runtime config gets
  the root's ``defaultValue``s, or null for optional parameters without one;
  ``backend/src/apiserver/template/v2_template.go``: required parameters and value kinds.
- ``backend/src/v2/driver/resolve.go`` (``resolveInputs``, ``resolveInputParameter``): a task
  input is a component input parameter of the parent DAG (null + optional = left out), an
  upstream output, or a ``runtimeValue.constant``, which is replaced only when the whole string
  IS ``{{$.pipeline_job_uuid}}``, ``{{$.pipeline_job_name}}``, ``{{$.pipeline_task_name}}``, ...;
  then ``handleParamTypeValidationAndConversion`` (missing non-optional inputs without default
  fail, STRING inputs take any value as text, other kinds must match).
- ``backend/src/v2/driver/driver.go`` (``provisionOutputs``): output artifact URIs
  ``<root>/<pipeline>/<run uuid>/<task>/<salt>/<name>``, output parameter files
  ``/tmp/kfp/outputs/<name>``, the executor output file beside the artifacts.
- ``backend/src/v2/driver/container.go`` + ``driver/cache.go`` + ``cacheutils/cache.go``: with
  ``cachingOptions.enableCache``, the fingerprint covers the resolved input parameter values,
  input artifact names, output specs, the RAW command and args (before substitution) and the
  image; a fingerprint seen before skips the task, its outputs come from the cached execution.
- ``backend/src/v2/component/launcher_v2.go`` (``executeV2``, ``addDefaultParams``,
  ``compileCmdAndArgs``, ``getPlaceholders``, ``collectOutputParameters``): defaults of the
  component's inputs are added for ``{{$}}``; ONLY ``{{$}}``, ``{{$.inputs.parameters['x']}}``,
  ``{{$.inputs.artifacts['x'].uri|path}}``, ``{{$.outputs.artifacts['x'].uri|path}}`` and
  ``{{$.outputs.parameters['x'].output_file}}`` are substituted, and only in args (the command's
  first element only gets ``{{$}}``); output parameters missing from the executor output are
  read from their files; output artifact metadata is merged from the executor output.
- ``backend/src/v2/compiler/argocompiler/container.go`` (``getTaskRetryParametersWithValues``,
  ``addParameterDefault(..., "0")``): ``retryPolicy`` becomes an Argo ``retryStrategy`` with
  ``limit``, ``backoff.duration`` (whole seconds of ``backoffDuration``), ``backoff.factor``
  and ``backoff.maxDuration`` (whole seconds of ``backoffMaxDuration``, **"0" when missing**);
  Argo (``workflow/controller/operator.go``, ``processNodeRetries``) reads the factor as an
  int32, fails the node once ``now > first attempt start + maxDuration`` or when the next
  backoff would end after that, and waits ``duration * factor**(attempt-1)`` otherwise.

Every task runs as a real subprocess of the container's command, with ``python`` on PATH being
this interpreter (the image). Pod paths (``/minio/...``, ``/tmp/kfp/outputs``) are rebased under
a per-run folder through ``ZENML_BRIDGE_KFP_POD_ROOT``; time spent in retry backoffs is virtual.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

KFP_TAG = "2.17.0"
PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"
_MOUNTS = (("gs://", "/gcs/"), ("minio://", "/minio/"), ("s3://", "/s3/"))


class BackendError(Exception):
    """What the backend itself would refuse (driver / launcher / API server errors)."""


@dataclasses.dataclass
class TaskRun:
    name: str
    state: str = "NOT_RUN"  # SUCCEEDED, FAILED, CACHED, SKIPPED (a dependency failed)
    attempts: int = 0
    executor_input: dict[str, Any] = dataclasses.field(default_factory=dict)
    argv: list[str] = dataclasses.field(default_factory=list)
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    message: str = ""
    logs: str = ""


@dataclasses.dataclass
class PipelineRun:
    run_uuid: str
    state: str
    tasks: dict[str, TaskRun]


def _local(uri: str) -> str:
    """``component.LocalPathForURI``: where the launcher mounts a remote artifact."""
    for prefix, mount in _MOUNTS:
        if uri.startswith(prefix):
            return mount + uri[len(prefix) :]
    raise BackendError(f"failed to generate local path for URI {uri}: unsupported storage scheme")


def _text(value: Any) -> str:
    """``metadata.PbValueToText`` / the placeholder formatting of launcher_v2.go."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(float(value))
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "struct"


def _duration_seconds(text: str | None) -> int:
    """``Duration.Seconds``: the whole seconds of a protobuf Duration (``1.5s`` -> 1)."""
    if text is None:
        return 0
    return int(float(text.removesuffix("s")))


class BackendEmulator:
    """A KFP 2.x backend for one compiled pipeline: API server, drivers, launcher, Argo.

    Args:
        spec_text: the compiled YAML (PipelineSpec, optionally a platform spec).
        workdir: a folder for the runs' pod roots.
        env: environment of the task processes (store URLs, ...).
        cwd: working folder of the task processes (not the project: code comes from the
            archive).
        cache: KFP's execution cache, shared by emulators that stand for one KFP install.
    """

    def __init__(
        self,
        spec_text: str,
        workdir: Path,
        env: Mapping[str, str],
        cwd: Path,
        cache: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        documents = [d for d in yaml.safe_load_all(spec_text) if d]
        # The API server parses the spec strictly into the protobuf messages.
        json_format.ParseDict(documents[0], pb.PipelineSpec(), ignore_unknown_fields=False)
        self.spec = documents[0]
        self.workdir = workdir
        self.env = dict(env)
        self.cwd = cwd
        self.cache = {} if cache is None else cache
        image = workdir / "image-bin"  # the image's PATH: `python` is this interpreter
        image.mkdir(parents=True, exist_ok=True)
        shim = image / "python"
        if not shim.exists():  # a wrapper, not a symlink: a venv's python must keep its path
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
            shim.chmod(0o755)
        self.path = f"{image}{os.pathsep}{os.environ.get('PATH', '')}"
        self.clock = 0.0  # virtual seconds spent in retry backoffs

    # -- API server + root DAG driver --------------------------------------------------------

    def runtime_config(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        specs = self.spec["root"].get("inputDefinitions", {}).get("parameters", {})
        values = dict(arguments)
        for name in values:
            if name not in specs:
                raise BackendError(f"unknown pipeline parameter {name!r}")
        for name, spec in specs.items():
            if name in values:
                expected = {"NUMBER_INTEGER": "number", "NUMBER_DOUBLE": "number",
                            "STRING": "string", "BOOLEAN": "bool", "LIST": "list",
                            "STRUCT": "struct"}[spec["parameterType"]]  # fmt: skip
                if _kind(values[name]) != expected:
                    raise BackendError(f"input parameter {name} requires type {expected}")
            elif "defaultValue" in spec:
                values[name] = spec["defaultValue"]
            elif spec.get("isOptional"):
                values[name] = None
            else:
                raise BackendError(f"parameter {name} is not optional, yet has no value")
        return values

    def run(self, arguments: Mapping[str, Any], run_uuid: str | None = None) -> PipelineRun:
        """One KFP run: every task in dependency order, as Argo schedules the DAG."""
        run_uuid = run_uuid or str(uuid.uuid4())
        pod_root = self.workdir / f"pods-{run_uuid}"
        params = self.runtime_config(arguments)
        tasks = self.spec["root"]["dag"]["tasks"]
        runs = {name: TaskRun(name) for name in tasks}
        pending = list(tasks)
        while pending:
            ready = [
                n
                for n in pending
                if all(runs[d].state != "NOT_RUN" for d in tasks[n].get("dependentTasks", []))
            ]
            if not ready:
                raise BackendError(f"cycle among {pending}")
            for name in sorted(ready):
                pending.remove(name)
                upstream = [runs[d].state for d in tasks[name].get("dependentTasks", [])]
                if any(state in ("FAILED", "SKIPPED") for state in upstream):
                    runs[name].state = "SKIPPED"
                    continue
                self._task(name, tasks[name], params, runs, run_uuid, pod_root)
        failed = any(r.state in ("FAILED", "SKIPPED") for r in runs.values())
        return PipelineRun(run_uuid, "FAILED" if failed else "SUCCEEDED", runs)

    # -- container driver --------------------------------------------------------------------

    def _resolve(
        self, task: dict[str, Any], component: dict[str, Any], params: dict[str, Any],
        runs: dict[str, TaskRun], run_uuid: str, name: str,
    ) -> dict[str, Any]:  # fmt: skip
        runtime = {
            "{{$.pipeline_job_name}}": f"run-{run_uuid[:8]}",
            "{{$.pipeline_job_resource_name}}": f"run-{run_uuid}",
            "{{$.pipeline_job_uuid}}": run_uuid,
            "{{$.pipeline_task_name}}": name,
            "{{$.pipeline_task_uuid}}": "17",
        }
        specs = component.get("inputDefinitions", {}).get("parameters", {})
        values: dict[str, Any] = {}
        for key, spec in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in spec:
                value = params.get(spec["componentInputParameter"])
                if value is None:
                    if specs.get(key, {}).get("isOptional"):
                        continue
                    raise BackendError(f"null for non-optional input parameter {key!r}")
            elif "runtimeValue" in spec:
                constant = spec["runtimeValue"]["constant"]
                # Exact match only: "kfp-{{$.pipeline_job_uuid}}" stays literal text.
                value = runtime.get(constant, constant) if isinstance(constant, str) else constant
            elif "taskOutputParameter" in spec:
                ref = spec["taskOutputParameter"]
                value = runs[ref["producerTask"]].parameters[ref["outputParameterKey"]]
            else:
                raise BackendError(f"input parameter spec {spec} not implemented")
            values[key] = value
        for key, spec in specs.items():
            if key not in values:
                if not spec.get("isOptional") and "defaultValue" not in spec:
                    raise BackendError(f"neither value nor default for non-optional {key!r}")
                continue
            if spec["parameterType"] == "STRING":
                if not isinstance(values[key], str):
                    values[key] = _text(values[key])
                continue
            expected = {"NUMBER_INTEGER": "number", "NUMBER_DOUBLE": "number", "BOOLEAN": "bool",
                        "LIST": "list", "STRUCT": "struct"}[spec["parameterType"]]  # fmt: skip
            if _kind(values[key]) != expected:
                raise BackendError(f"input parameter {key!r} type mismatch: expect {expected}")
        artifacts = {}
        for key, spec in task.get("inputs", {}).get("artifacts", {}).items():
            ref = spec["taskOutputArtifact"]
            artifact = runs[ref["producerTask"]].artifacts[ref["outputArtifactKey"]]
            artifacts[key] = {"artifacts": [artifact]}
        inputs: dict[str, Any] = {"parameterValues": values}
        if artifacts:
            inputs["artifacts"] = artifacts
        return inputs

    def _outputs(self, component: dict[str, Any], run_uuid: str, name: str) -> dict[str, Any]:
        pipeline = self.spec["pipelineInfo"]["name"]
        task_root = f"{PIPELINE_ROOT}/{pipeline}/{run_uuid}/{name}/{uuid.uuid4()}"
        outputs: dict[str, Any] = {"outputFile": f"{_local(task_root)}/output_metadata.json"}
        definitions = component.get("outputDefinitions", {})
        if definitions.get("artifacts"):
            outputs["artifacts"] = {
                key: {"artifacts": [{"name": key, "type": spec["artifactType"],
                                     "uri": f"{task_root}/{key}", "metadata": {}}]}
                for key, spec in definitions["artifacts"].items()
            }  # fmt: skip
        if definitions.get("parameters"):
            outputs["parameters"] = {
                key: {"outputFile": f"/tmp/kfp/outputs/{key}"} for key in definitions["parameters"]
            }
        return outputs

    def fingerprint(self, executor_input: dict[str, Any], component: dict[str, Any],
                    container: dict[str, Any]) -> str:  # fmt: skip
        """``cacheutils.GenerateCacheKey`` + ``GenerateFingerPrint`` (same fields, sha256)."""
        outputs = executor_input["outputs"]
        key = {
            "inputArtifactNames": {
                k: [a.get("name", "") for a in v["artifacts"]]
                for k, v in executor_input["inputs"].get("artifacts", {}).items()
            },
            "inputParameterValues": executor_input["inputs"]["parameterValues"],
            "outputArtifactsSpec": {
                k: {"name": v["artifacts"][0]["name"], "type": v["artifacts"][0]["type"]}
                for k, v in outputs.get("artifacts", {}).items()
            },
            "outputParametersSpec": {
                k: component["outputDefinitions"]["parameters"][k]["parameterType"]
                for k in outputs.get("parameters", {})
            },
            "containerSpec": {
                "image": container["image"],
                "cmdArgs": [*container.get("command", []), *container.get("args", [])],
            },
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def _task(
        self, name: str, task: dict[str, Any], params: dict[str, Any],
        runs: dict[str, TaskRun], run_uuid: str, pod_root: Path,
    ) -> None:  # fmt: skip
        if task.get("triggerPolicy"):
            raise BackendError("triggerPolicy is not emulated")
        component = self.spec["components"][task["componentRef"]["name"]]
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        container = executor["container"]
        run = runs[name]
        executor_input = {
            "inputs": self._resolve(task, component, params, runs, run_uuid, name),
            "outputs": self._outputs(component, run_uuid, name),
        }
        json_format.ParseDict(executor_input, pb.ExecutorInput(), ignore_unknown_fields=False)
        run.executor_input = executor_input
        cache_key = ""
        if task.get("cachingOptions", {}).get("enableCache"):
            pipeline = self.spec["pipelineInfo"]["name"]
            cache_key = (
                f"pipeline/{pipeline}:{self.fingerprint(executor_input, component, container)}"
            )
            cached = self.cache.get(cache_key)
            if cached is not None:  # the launcher is skipped; outputs of the cached execution
                run.state, run.parameters = "CACHED", dict(cached["parameters"])
                run.artifacts = json.loads(json.dumps(cached["artifacts"]))
                return
        policy = task.get("retryPolicy")
        limit = int(policy.get("maxRetryCount", 0)) if policy else 0
        base = _duration_seconds(policy.get("backoffDuration")) if policy else 0
        # addParameterDefault(..., "0"): a missing backoffMaxDuration becomes maxDuration "0".
        most = _duration_seconds(policy.get("backoffMaxDuration")) if policy else 0
        factor_text = _text(policy.get("backoffFactor", 0)) if policy else "0"
        first_start = self.clock
        while True:
            run.attempts += 1
            ok = self._launch(run, executor_input, component, container, pod_root)
            if ok:
                run.state = "SUCCEEDED"
                break
            if not policy or run.attempts > limit:
                run.state, run.message = "FAILED", run.message or "No more retries left"
                break
            if self.clock > first_start + most:
                run.state, run.message = "FAILED", "Max duration limit exceeded"
                break
            try:
                factor = int(factor_text)  # intstr.Int32: "1.5" is an error
            except ValueError:
                raise BackendError(f"value '{factor_text}' cannot be resolved to an int") from None
            wait = base * (factor ** (run.attempts - 1) if factor > 0 else 1)
            if self.clock + wait > first_start + most:
                run.state, run.message = "FAILED", "Backoff would exceed max duration limit"
                break
            self.clock += wait
        if run.state == "SUCCEEDED" and cache_key:
            self.cache[cache_key] = {"parameters": run.parameters, "artifacts": run.artifacts}

    # -- launcher ----------------------------------------------------------------------------

    def _launch(
        self, run: TaskRun, executor_input: dict[str, Any], component: dict[str, Any],
        container: dict[str, Any], pod_root: Path,
    ) -> bool:  # fmt: skip
        """One attempt (one pod): the launcher's executeV2."""
        with_defaults = json.loads(json.dumps(executor_input))
        values = with_defaults["inputs"]["parameterValues"]
        for key, spec in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if key not in values and "defaultValue" in spec:
                values[key] = spec["defaultValue"]
        placeholders = self._placeholders(with_defaults)
        whole = json.dumps(with_defaults, separators=(",", ":"), ensure_ascii=False)
        command = [*container["command"], *container.get("args", [])]
        cmd = command[0].replace("{{$}}", whole)
        args = []
        for arg in command[1:]:
            arg = arg.replace("{{$}}", whole)
            for key, value in placeholders.items():
                arg = arg.replace(key, value)
            args.append(arg)
        run.argv = [cmd, *args]
        outputs = executor_input["outputs"]
        pod = pod_root / f"{run.name}-{run.attempts}"
        for spec in outputs.get("parameters", {}).values():
            (pod / spec["outputFile"].lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        for listed in outputs.get("artifacts", {}).values():
            local = pod / _local(listed["artifacts"][0]["uri"]).lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "PATH": self.path, "ZENML_BRIDGE_KFP_POD_ROOT": str(pod)}
        for item in container.get("env", []):
            env[item["name"]] = item["value"]
        done = subprocess.run(
            run.argv, env=env, cwd=self.cwd, capture_output=True, text=True, timeout=300
        )
        run.logs += f"--- attempt {run.attempts}\n{done.stdout}{done.stderr}"
        if done.returncode != 0:
            run.message = f"exit code {done.returncode}"
            return False
        output_file = pod / outputs["outputFile"].lstrip("/")
        written = json.loads(output_file.read_text()) if output_file.exists() else {}
        json_format.ParseDict(written, pb.ExecutorOutput(), ignore_unknown_fields=False)
        run.parameters = dict(written.get("parameterValues", {}))
        types = component.get("outputDefinitions", {}).get("parameters", {})
        for key, spec in outputs.get("parameters", {}).items():
            if key in run.parameters:
                continue
            path = pod / spec["outputFile"].lstrip("/")
            if not path.exists():
                run.message = f"failed to read output parameter name={key!r}"
                return False
            run.parameters[key] = _from_text(path.read_text(), types[key]["parameterType"])
        for key, listed in outputs.get("artifacts", {}).items():
            artifact = json.loads(json.dumps(listed["artifacts"][0]))
            produced = (written.get("artifacts", {}).get(key) or {}).get("artifacts") or [{}]
            if produced[0].get("uri"):
                artifact["uri"] = produced[0]["uri"]
            artifact["metadata"] = {**artifact["metadata"], **produced[0].get("metadata", {})}
            local = pod / _local(artifact["uri"]).lstrip("/")
            if not local.exists():  # uploadOutputArtifacts fails on a missing local file
                run.message = f"output artifact {key!r} was not written at {local}"
                return False
            run.artifacts[key] = artifact
        return True

    @staticmethod
    def _placeholders(executor_input: dict[str, Any]) -> dict[str, str]:
        """``getPlaceholders``: exactly the keys the launcher substitutes in args."""
        found: dict[str, str] = {}
        for key, listed in executor_input["inputs"].get("artifacts", {}).items():
            artifact = listed["artifacts"][0]
            found[f"{{{{$.inputs.artifacts['{key}'].uri}}}}"] = artifact["uri"]
            found[f"{{{{$.inputs.artifacts['{key}'].path}}}}"] = _local(artifact["uri"])
        for key, listed in executor_input["outputs"].get("artifacts", {}).items():
            artifact = listed["artifacts"][0]
            found[f"{{{{$.outputs.artifacts['{key}'].uri}}}}"] = artifact["uri"]
            found[f"{{{{$.outputs.artifacts['{key}'].path}}}}"] = _local(artifact["uri"])
        for key, value in executor_input["inputs"]["parameterValues"].items():
            found[f"{{{{$.inputs.parameters['{key}']}}}}"] = _text(value)
        for key, spec in executor_input["outputs"].get("parameters", {}).items():
            found[f"{{{{$.outputs.parameters['{key}'].output_file}}}}"] = spec["outputFile"]
        return found


def _from_text(text: str, kind: str) -> Any:
    """``metadata.TextToPbValue``."""
    if kind == "STRING":
        return text
    if kind == "NUMBER_INTEGER":
        return int(text.strip())
    if kind == "NUMBER_DOUBLE":
        return float(text.strip())
    if kind == "BOOLEAN":
        return {"true": True, "false": False, "1": True, "0": False}[text.strip().lower()]
    return json.loads(text)
