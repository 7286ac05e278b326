"""The ``kubeflow`` target: a Kubeflow Pipelines v2 PipelineSpec (YAML) from the pipeline IR.

The spec is built as plain dicts in KFP's own JSON field names and validated against the real
protobuf messages of ``kfp-pipeline-spec`` (and ``kfp-kubernetes`` when installed) before it is
dumped. Dicts rather than protobuf objects because proto3 drops default values when turned back
into data (``enableCache: false`` would vanish, and caching must be written explicitly) and
because dicts dump to YAML several times faster. Nothing is text-templated: user text is only
ever a YAML scalar, escaped by the YAML emitter.

Each step becomes one component, one executor and one task. Executors call our entrypoint; the
pipeline's parameters arrive in the executor input (``{{$}}``), typed by KFP, and the run id is
derived from KFP's pipeline job id so that every task of a KFP run records into the same run.
"""

from __future__ import annotations

import json
import keyword
import math
from pathlib import Path
from typing import Any, ClassVar

from zenml_bridge import ir
from zenml_bridge.compilers.base import (
    CompileOptions,
    Compiler,
    CompileResult,
    Problem,
    quantity_problem,
    write_atomic,
)

SCHEMA_VERSION = "2.1.0"
ARTIFACT_TYPE = {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"}
#: Every task of one KFP run records into our run ``kfp-<KFP job uuid>``.
RUN_ID = "kfp-{{$.pipeline_job_uuid}}"
EXECUTOR_INPUT = "{{$}}"
ENTRYPOINT_COMMAND = ("python", "-m", "zenml_bridge.entrypoint")
DEFAULT_LIGHTWEIGHT_IMAGE = "python:3.11"
#: The lightweight executor runs this fixed module through ``kfp.dsl.executor_main``, the way
#: KFP runs its own Python components; it holds no user text (arguments travel as data).
LIGHTWEIGHT_FUNCTION = "zenml_bridge_step"
LIGHTWEIGHT_SOURCE = (
    "from zenml_bridge.runtime.kfp_io import lightweight_function\n\n"
    f"{LIGHTWEIGHT_FUNCTION} = lightweight_function()\n"
)
LIGHTWEIGHT_SCRIPT = (
    'program_path=$(mktemp -d)\nprintf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
    "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path "
    '"$program_path/ephemeral_component.py" "$@"\n'
)
LIGHTWEIGHT_ARGV_FLAG = "--zenml-bridge-run-step"

KUBERNETES_KEYS = (
    "node_selector",
    "tolerations",
    "secret_env",
    "labels",
    "annotations",
    "image_pull_policy",
    "image_pull_secrets",
    "gpu_resource",
)
TOLERATION_KEYS = ("key", "operator", "value", "effect", "toleration_seconds")
PRESETS = {  # KFP's cron has a seconds field first.
    "@hourly": "0 0 * * * *",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@weekly": "0 0 0 * * 0",
    "@monthly": "0 0 0 1 * *",
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
}
PARAMETER_TYPES = {
    "int": "NUMBER_INTEGER",
    "float": "NUMBER_DOUBLE",
    "str": "STRING",
    "bool": "BOOLEAN",
    "list": "LIST",
    "tuple": "LIST",
    "dict": "STRUCT",
}


def parameter_type(parameter: ir.Parameter) -> str:
    """The KFP ``parameterType`` of a pipeline parameter, from its annotation or its default."""
    options = [t.strip() for t in parameter.type.split("|") if t.strip() != "None"]
    if len(options) == 1:
        base = options[0].split("[", 1)[0].strip()
        if base in PARAMETER_TYPES:
            return PARAMETER_TYPES[base]
    value = parameter.default
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "NUMBER_INTEGER"
    if isinstance(value, float):
        return "NUMBER_DOUBLE"
    if isinstance(value, list):
        return "LIST"
    if isinstance(value, dict):
        return "STRUCT"
    # Any without a usable default: the runtime reads the text as JSON when it parses.
    return "STRING"


def kfp_cron(schedule: str) -> str | None:
    """The schedule as KFP's six-field cron (seconds first), or None if it has no such form."""
    if schedule in PRESETS:
        return PRESETS[schedule]
    fields = schedule.split()
    return "0 " + " ".join(fields) if len(fields) == 5 else None


def duration(seconds: float) -> str:
    """A protobuf Duration in its JSON form: ``5s``, ``0.5s``."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds:.9f}".rstrip("0") + "s"


def artifact_key(input_name: str) -> str:
    """KFP input key of a data input; ``parts.0`` (a ``*args`` item) becomes ``parts-0``."""
    return input_name.replace(".", "-")


class KubeflowCompiler(Compiler):
    """Writes a KFP v2 PipelineSpec YAML (plus the Kubernetes platform spec document).

    Example:
        >>> from zenml_bridge.compilers import get_compiler
        >>> get_compiler("kubeflow").compile(pipeline_ir, options)   # doctest: +SKIP
    """

    target = "kubeflow"
    SUPPORTS_SCHEDULE = False
    SUPPORTS_RESOURCES = SUPPORTS_RETRIES = SUPPORTS_TIMEOUT = True
    EXECUTORS: ClassVar[tuple[str, ...]] = ("container", "lightweight")

    # -- problems ---------------------------------------------------------------------------

    def preflight(self, pipeline: ir.Pipeline, options: CompileOptions) -> None:
        """Refuse early, before the CLI publishes anything, when kfp is not installed: the spec
        is validated against kfp's protobuf messages before it is written."""
        try:
            from google.protobuf import json_format  # noqa: F401
            from kfp.pipeline_spec import pipeline_spec_pb2  # noqa: F401
        except ImportError as exc:
            raise ir.BridgeError(
                f"Compiling for Kubeflow needs the kfp packages, which are not installed here "
                f"({exc}). Install them with: pip install 'zenml-bridge[kubeflow]'."
            ) from None
        super().preflight(pipeline, options)

    def check(self, pipeline: ir.Pipeline, options: CompileOptions) -> list[Problem]:
        problems = []
        if pipeline.schedule:
            cron = kfp_cron(pipeline.schedule)
            sidecar = self.schedule_path(self.out_path(pipeline, options)).name
            problems.append(
                _error(None, "schedule", f"{pipeline.schedule!r} has no cron form for KFP "
                       "recurring runs; use a five-field cron or @hourly/@daily/@weekly/...")
                if cron is None
                else Problem("warning", None, "schedule", "a PipelineSpec cannot hold a "
                             f"schedule; it is written beside the output as {sidecar} (cron "
                             f"{cron!r}) for a KFP recurring run")
            )  # fmt: skip
        if options.executor not in self.EXECUTORS:
            problems.append(
                _error(None, "executor", f"unknown executor {options.executor!r}; use one of "
                       f"{', '.join(self.EXECUTORS)}")
            )  # fmt: skip
        if not options.ir_uri:
            problems.append(
                _error(None, "ir", "the IR has no published URI for workers; compile with the "
                       "CLI (zenml-bridge compile ... --target kubeflow), which stores it first")
            )  # fmt: skip
        seen: dict[str, str] = {}
        for step in pipeline.steps:
            key = ir.k8s_name(step.name)
            if key in seen:
                problems.append(
                    _error(step.name, "name", f"maps to the Kubernetes name {key!r} like step "
                           f"'{seen[key]}'; rename one of them")
                )  # fmt: skip
            seen.setdefault(key, step.name)
            if options.executor == "container" and not (step.image or options.image):
                problems.append(
                    _error(step.name, "image", "a container executor needs an image with "
                           "zenml-bridge installed; pass --image IMAGE or set @step(image=...)")
                )  # fmt: skip
            for what, quantity in (("cpu", step.resources.cpu), ("memory", step.resources.memory)):
                problem = None if quantity is None else quantity_problem(step.name, what, quantity)
                if problem:
                    problems.append(problem)
            if options.executor == "lightweight":
                problems += [
                    _error(step.name, "outputs", f"output name {o.name!r} cannot be a Python "
                           "argument name, which the lightweight executor needs; rename it")
                    for o in step.outputs
                    if not o.name.isidentifier() or keyword.iskeyword(o.name)
                ]  # fmt: skip
            problems += _check_kubernetes(step)
        return problems

    # -- output -----------------------------------------------------------------------------

    @staticmethod
    def out_path(pipeline: ir.Pipeline, options: CompileOptions) -> Path:
        out = options.out
        return out / f"{pipeline.name}.yaml" if out.is_dir() else out

    @staticmethod
    def schedule_path(out: Path) -> Path:
        return out.with_name(f"{out.stem}.schedule.json")

    def emit(self, pipeline: ir.Pipeline, options: CompileOptions) -> CompileResult:
        spec, platform = self.build(pipeline, options)
        validate(spec, platform)
        out = self.out_path(pipeline, options)
        write_atomic(out, dump_yaml(pipeline, spec, platform))
        paths = [out]
        notes = [f"upload {out.name} in the KFP UI or with kfp.Client().upload_pipeline(...)"]
        if pipeline.schedule:
            sidecar = self.schedule_path(out)
            cron = kfp_cron(pipeline.schedule)
            schedule = {
                "pipeline": spec["pipelineInfo"]["name"],
                "pipeline_package_path": out.name,
                "schedule": pipeline.schedule,
                "cron_expression": cron,
                "how": "kfp.Client().create_recurring_run(experiment_id, job_name, "
                "cron_expression=..., pipeline_package_path=...)",
            }
            write_atomic(sidecar, json.dumps(schedule, indent=2, ensure_ascii=False) + "\n")
            paths.append(sidecar)
        return CompileResult(paths=tuple(paths), notes=tuple(notes))

    def build(
        self, pipeline: ir.Pipeline, options: CompileOptions
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The PipelineSpec and the PlatformSpec as plain data (KFP's JSON field names)."""
        parameters = {p.name: p for p in pipeline.parameters}
        components: dict[str, Any] = {}
        executors: dict[str, Any] = {}
        tasks: dict[str, Any] = {}
        platform_executors: dict[str, Any] = {}
        ir_sha256 = options.ir_sha256 or ir.sha256(pipeline)
        for step in pipeline.steps:
            name = ir.k8s_name(step.name)
            component, task = self._component_and_task(step, parameters)
            components[f"comp-{name}"] = component
            task["componentRef"] = {"name": f"comp-{name}"}
            task["taskInfo"] = {"name": name}
            tasks[name] = task
            executors[f"exec-{name}"] = {
                "container": self._container(step, options, str(options.ir_uri), ir_sha256)
            }
            kubernetes = self._kubernetes(step)
            if kubernetes:
                platform_executors[f"exec-{name}"] = kubernetes
        root: dict[str, Any] = {"dag": {"tasks": tasks}}
        if parameters:
            root["inputDefinitions"] = {
                "parameters": {p.name: _root_parameter(p) for p in pipeline.parameters}
            }
        info = {"name": ir.k8s_name(pipeline.name), "displayName": pipeline.name}
        if pipeline.description:
            info["description"] = pipeline.description
        spec = {
            "components": components,
            "deploymentSpec": {"executors": executors},
            "pipelineInfo": info,
            "root": root,
            "schemaVersion": SCHEMA_VERSION,
            "sdkVersion": "zenml-bridge",
        }
        platform: dict[str, Any] = {}
        if platform_executors:
            platform = {
                "platforms": {"kubernetes": {"deploymentSpec": {"executors": platform_executors}}}
            }
        return spec, platform

    def _component_and_task(
        self, step: ir.Step, parameters: dict[str, ir.Parameter]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        inputs_def: dict[str, Any] = {}
        task_inputs: dict[str, Any] = {}
        # Every task gets every pipeline parameter: the first task of a run records the run's
        # parameters, and each step's cache key (ours) still uses only the values it reads.
        used = list(parameters)
        if used:
            inputs_def["parameters"] = {
                p: {"parameterType": parameter_type(parameters[p])}
                | ({"isOptional": True} if parameters[p].default is None else {})
                for p in used
            }
            task_inputs["parameters"] = {p: {"componentInputParameter": p} for p in used}
        data = [ref for ref in step.inputs if ref.kind == "output"]
        if data:
            inputs_def["artifacts"] = {
                artifact_key(ref.name): {"artifactType": ARTIFACT_TYPE} for ref in data
            }
            task_inputs["artifacts"] = {
                artifact_key(ref.name): {
                    "taskOutputArtifact": {
                        "outputArtifactKey": ref.output,
                        "producerTask": ir.k8s_name(str(ref.step)),
                    }
                }
                for ref in data
            }
        component: dict[str, Any] = {"executorLabel": f"exec-{ir.k8s_name(step.name)}"}
        if inputs_def:
            component["inputDefinitions"] = inputs_def
        if step.outputs:
            component["outputDefinitions"] = {
                "artifacts": {o.name: {"artifactType": ARTIFACT_TYPE} for o in step.outputs}
            }
        task: dict[str, Any] = {"cachingOptions": {"enableCache": step.cache}}
        if step.upstream:
            task["dependentTasks"] = [ir.k8s_name(name) for name in step.upstream]
        if task_inputs:
            task["inputs"] = task_inputs
        retry = step.retry
        if retry.max_retries:
            task["retryPolicy"] = {
                "maxRetryCount": retry.max_retries,
                "backoffDuration": duration(retry.delay_s),
                "backoffFactor": retry.backoff_factor,
            } | (
                {"backoffMaxDuration": duration(retry.max_delay_s)}
                if retry.max_delay_s is not None
                else {}
            )
        return component, task

    def _container(
        self, step: ir.Step, options: CompileOptions, ir_uri: str, ir_sha256: str
    ) -> dict[str, Any]:
        argv = ["--ir", ir_uri, "--ir-sha256", ir_sha256, "--step", step.name, "--run-id", RUN_ID]
        if options.code_archive and options.code_archive_uri:
            argv += [
                "--code-archive",
                options.code_archive_uri,
                "--code-archive-sha256",
                str(options.code_archive_sha256),
            ]
        container: dict[str, Any]
        if options.executor == "lightweight":
            container = {
                "image": step.image or options.image or DEFAULT_LIGHTWEIGHT_IMAGE,
                "command": ["sh", "-ec", LIGHTWEIGHT_SCRIPT, LIGHTWEIGHT_SOURCE],
                "args": [
                    "--executor_input",
                    EXECUTOR_INPUT,
                    "--function_to_execute",
                    LIGHTWEIGHT_FUNCTION,
                    LIGHTWEIGHT_ARGV_FLAG,
                    lightweight_argv(argv),
                ],
            }
        else:
            container = {
                "image": step.image or options.image,
                "command": list(ENTRYPOINT_COMMAND),
                "args": ["run-step", *argv, "--kfp-executor-input", EXECUTOR_INPUT],
            }
        env = dict(step.env)
        if options.metadata_url:
            env.setdefault("ZENML_BRIDGE_METADATA_URL", options.metadata_url)
        if options.artifact_root:
            env.setdefault("ZENML_BRIDGE_ARTIFACT_ROOT", options.artifact_root)
        if env:
            container["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
        resources: dict[str, Any] = {}
        if step.resources.cpu:
            resources["resourceCpuLimit"] = resources["resourceCpuRequest"] = step.resources.cpu
        if step.resources.memory:
            resources["resourceMemoryLimit"] = step.resources.memory
            resources["resourceMemoryRequest"] = step.resources.memory
        if step.resources.gpu:
            gpu = (step.settings.get("kubernetes") or {}).get("gpu_resource", "nvidia.com/gpu")
            resources["accelerator"] = {
                "resourceType": gpu,
                "resourceCount": str(step.resources.gpu),
            }
        if resources:
            container["resources"] = resources
        return container

    @staticmethod
    def _kubernetes(step: ir.Step) -> dict[str, Any]:
        settings = step.settings.get("kubernetes") or {}
        config: dict[str, Any] = {}
        if settings.get("node_selector"):
            config["nodeSelector"] = {"labels": dict(settings["node_selector"])}
        if settings.get("tolerations"):
            config["tolerations"] = [
                {
                    ("tolerationSeconds" if k == "toleration_seconds" else k): v
                    for k, v in toleration.items()
                }
                for toleration in settings["tolerations"]
            ]
        if settings.get("secret_env"):
            by_secret: dict[str, list[dict[str, str]]] = {}
            for env_var, ref in sorted(settings["secret_env"].items()):
                by_secret.setdefault(ref["secret"], []).append(
                    {"secretKey": ref["key"], "envVar": env_var}
                )
            config["secretAsEnv"] = [
                {"secretName": secret, "keyToEnv": keys} for secret, keys in by_secret.items()
            ]
        if settings.get("labels") or settings.get("annotations"):
            config["podMetadata"] = {
                k: dict(settings[k]) for k in ("labels", "annotations") if settings.get(k)
            }
        if settings.get("image_pull_policy"):
            config["imagePullPolicy"] = settings["image_pull_policy"]
        if settings.get("image_pull_secrets"):
            config["imagePullSecret"] = [
                {"secretName": name} for name in settings["image_pull_secrets"]
            ]
        if step.timeout_s:
            config["activeDeadlineSeconds"] = math.ceil(step.timeout_s)
        return config


def _error(step: str | None, setting: str, message: str) -> Problem:
    return Problem("error", step, setting, message)


def _check_kubernetes(step: ir.Step) -> list[Problem]:
    """Problems of a step's ``settings["kubernetes"]``, each naming the step and the key."""
    settings = step.settings.get("kubernetes") or {}
    where = "settings['kubernetes']['{}']".format
    problems = [
        _error(step.name, where(key), "unknown key" + ir.did_you_mean(key, KUBERNETES_KEYS)
               + f" Known: {', '.join(KUBERNETES_KEYS)}.")
        for key in sorted(set(settings) - set(KUBERNETES_KEYS))
    ]  # fmt: skip
    for name in ("node_selector", "labels", "annotations"):
        value = settings.get(name, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            problems.append(
                _error(step.name, where(name), "must map strings to strings, e.g. {'a': 'b'}")
            )
    tolerations = settings.get("tolerations", [])
    if not isinstance(tolerations, list) or not all(
        isinstance(t, dict) and set(t) <= set(TOLERATION_KEYS) for t in tolerations
    ):
        problems.append(
            _error(step.name, where("tolerations"), "must be a list of dicts with keys among "
                   f"{', '.join(TOLERATION_KEYS)}")
        )  # fmt: skip
    secret_env = settings.get("secret_env", {})
    if not isinstance(secret_env, dict) or not all(
        isinstance(ref, dict) and set(ref) == {"secret", "key"} for ref in secret_env.values()
    ):
        problems.append(
            _error(step.name, where("secret_env"), "must map an env var name to "
                   "{'secret': NAME, 'key': KEY}")
        )  # fmt: skip
    pulls = settings.get("image_pull_secrets", [])
    if not isinstance(pulls, list) or not all(isinstance(n, str) for n in pulls):
        problems.append(_error(step.name, where("image_pull_secrets"), "must be a list of names"))
    return problems


def _root_parameter(parameter: ir.Parameter) -> dict[str, Any]:
    spec: dict[str, Any] = {"parameterType": parameter_type(parameter)}
    if not parameter.required:
        spec["isOptional"] = True
        if parameter.default is not None:
            spec["defaultValue"] = parameter.default
    return spec


def lightweight_argv(argv: list[str]) -> str:
    """Entrypoint arguments as one JSON element of the lightweight command.

    kfp.local swaps every ``python3`` in a command for its interpreter, so the text is written
    with that word escaped (``\\u0070ython3``); JSON decodes it back unchanged.
    """
    return json.dumps(argv, ensure_ascii=False).replace("python3", "\\u0070ython3")


def validate(spec: dict[str, Any], platform: dict[str, Any]) -> None:
    """Parse the spec strictly into the real protobuf messages before anything is written.

    Raises:
        BridgeError: a value does not fit KFP's schema (e.g. a wrongly typed Kubernetes
            setting); the message names the step's executor and the field.
    """
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb

    try:
        from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s
    except ImportError:  # kfp-kubernetes is optional; the platform spec's outline is checked
        k8s = None
    # deploymentSpec is a free-form Struct in PipelineSpec: its executors are checked one by one
    # against ExecutorSpec instead (parsing them twice would double the cost).
    checks: list[tuple[str, dict[str, Any], Any]] = [
        ("the PipelineSpec", {**spec, "deploymentSpec": {}}, pb.PipelineSpec)
    ]
    for label, executor in spec["deploymentSpec"]["executors"].items():
        checks.append((f"executor {label}", executor, pb.PipelineDeploymentConfig.ExecutorSpec))
    if platform:
        checks.append(("the platform spec", platform, pb.PlatformSpec))
        configs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        if k8s is not None:
            for label, config in configs.items():
                checks.append(
                    (f"Kubernetes settings of {label}", config, k8s.KubernetesExecutorConfig)
                )
    for what, data, message in checks:
        try:
            json_format.ParseDict(data, message(), ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise ir.BridgeError(
                f"The Kubeflow spec would be invalid: {what}: {exc}. Fix the step setting it "
                "names (see docs/kubeflow.md for the accepted settings)."
            ) from None


def dump_yaml(pipeline: ir.Pipeline, spec: dict[str, Any], platform: dict[str, Any]) -> str:
    """The YAML file: a header comment, the PipelineSpec and, if any, the platform spec."""
    from zenml_bridge.compilers.kubeflow_yaml import dump_documents

    header = (
        f"# Kubeflow Pipelines v2 spec of pipeline {pipeline.name}, written by zenml-bridge.\n"
        "# Regenerate it with `zenml-bridge compile`; do not edit.\n"
    )
    return header + dump_documents([spec, platform] if platform else [spec])


__all__ = ["KubeflowCompiler"]
