"""The PipelineSpec of the ``kubeflow`` target as plain data (KFP's JSON field names).

Each step becomes one component, one executor and one task. What a real KFP 2.x backend does
with it decides its shape (see ``tests/kubeflow/kfp_backend_emulator.py``, written from the
backend's code):

- The run id is a task input resolved by the driver from the runtime value
  ``{{$.pipeline_job_uuid}}`` (the way the kfp SDK passes it); the launcher only substitutes
  ``{{$}}`` and ``{{$.inputs...}}``/``{{$.outputs...}}`` in container args, so a runtime
  placeholder left in args would reach every run as the same literal text.
- A task's inputs are the step's own arguments: the pipeline parameters it reads (under the
  step's argument names, typed, with the parameter's default) and its literals (runtime-value
  constants); data inputs are artifacts or, for scalar outputs, output parameters.
- ``retryPolicy`` always has ``backoffMaxDuration`` (the Argo compiler writes 0 when it is
  missing, and Argo then stops retrying at the first failure).
- Resources are written in both generations of fields, as the kfp SDK does: the numeric
  ``cpuLimit``/``memoryLimit``/``accelerator.type,count`` older backends read, and the string
  ``resourceCpuLimit``/... fields of current ones.
"""

from __future__ import annotations

import json
import math
from typing import Any

from zenml_bridge import ir
from zenml_bridge.compilers.base import CompileOptions, parse_quantity

SCHEMA_VERSION = "2.1.0"
ARTIFACT_TYPE = {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"}
DATASET_TYPE = {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}
MODEL_TYPE = {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"}
METRICS_TYPE = {"schemaTitle": "system.Metrics", "schemaVersion": "0.0.1"}
#: Every task's metrics logged with the step context, as a KFP Metrics artifact (the KFP UI
#: shows and compares them); kfp_io writes it under the same name.
METRICS_OUTPUT = "step_metrics"
#: The task input that carries KFP's run uuid; the driver resolves the runtime value.
RUN_UUID_INPUT = "zenml_bridge_run_uuid"
RUN_UUID_VALUE = "{{$.pipeline_job_uuid}}"
#: Every task of one KFP run records into our run ``kfp-<KFP run uuid>``.
RUN_ID = f"kfp-{{{{$.inputs.parameters['{RUN_UUID_INPUT}']}}}}"
EXECUTOR_INPUT = "{{$}}"
ENTRYPOINT_COMMAND = ("python", "-m", "zenml_bridge.entrypoint")
DEFAULT_LIGHTWEIGHT_IMAGE = "python:3.11"
#: What the kfp SDK writes when a task sets no maximum (and the most KFP allows): one hour.
DEFAULT_BACKOFF_MAX_S = 3600
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
PARAMETER_TYPES = {
    "int": "NUMBER_INTEGER",
    "float": "NUMBER_DOUBLE",
    "str": "STRING",
    "bool": "BOOLEAN",
    "list": "LIST",
    "tuple": "LIST",
    "dict": "STRUCT",
}
#: Outputs of these types are KFP output parameters (an outer pipeline can branch on them).
SCALAR_OUTPUTS = {"int": "NUMBER_INTEGER", "float": "NUMBER_DOUBLE", "bool": "BOOLEAN"}
SCALAR_OUTPUTS["str"] = "STRING"


def value_type(value: Any) -> str:
    """The KFP ``parameterType`` of a JSON value."""
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
    return "STRING"


def parameter_type(parameter: ir.Parameter) -> str:
    """The KFP ``parameterType`` of a pipeline parameter, from its annotation or its default."""
    options = [t.strip() for t in parameter.type.split("|") if t.strip() != "None"]
    if len(options) == 1:
        base = options[0].split("[", 1)[0].strip()
        if base in PARAMETER_TYPES:
            return PARAMETER_TYPES[base]
    # Any without a usable default is STRING: the runtime reads the text as JSON.
    return value_type(parameter.default) if parameter.default is not None else "STRING"


def output_parameter_type(output: ir.OutputSpec) -> str | None:
    """The ``parameterType`` when the output is a KFP output parameter, else None."""
    return SCALAR_OUTPUTS.get(output.type.replace(" ", ""))


def artifact_type(output: ir.OutputSpec) -> dict[str, str]:
    """The KFP artifact type of an output: Dataset for frames, Model for estimators."""
    kind, materializer = output.type, output.materializer or ""
    if kind.startswith("pandas.") or materializer.startswith("pandas."):
        return DATASET_TYPE
    if kind.startswith("sklearn.") or materializer.startswith("sklearn."):
        return MODEL_TYPE
    return ARTIFACT_TYPE


def duration(seconds: float) -> str:
    """A protobuf Duration in its JSON form: ``5s``, ``0.5s``."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds:.9f}".rstrip("0") + "s"


def input_key(input_name: str) -> str:
    """KFP input key of a step argument; ``parts.0`` (a ``*args`` item) becomes ``parts-0``."""
    return input_name.replace(".", "-")


def root_output_key(step: str, output: str) -> str:
    """Name of a step output among the pipeline's own outputs (for an outer kfp pipeline)."""
    return f"{step}__{output}"


def build_spec(
    pipeline: ir.Pipeline, options: CompileOptions, kfp_caching: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PipelineSpec and the PlatformSpec as plain data (KFP's JSON field names)."""
    parameters = {p.name: p for p in pipeline.parameters}
    producers = {s.name: s for s in pipeline.steps}
    components: dict[str, Any] = {}
    executors: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    platform_executors: dict[str, Any] = {}
    root_outputs: dict[str, Any] = {}
    root_selectors: dict[str, Any] = {}
    ir_sha256 = options.ir_sha256 or ir.sha256(pipeline)
    for step in pipeline.steps:
        name = ir.k8s_name(step.name)
        component, task = _component_and_task(step, parameters, producers, kfp_caching)
        components[f"comp-{name}"] = component
        task["componentRef"] = {"name": f"comp-{name}"}
        task["taskInfo"] = {"name": name}
        tasks[name] = task
        executors[f"exec-{name}"] = {
            "container": _container(step, options, str(options.ir_uri), ir_sha256)
        }
        kubernetes = _kubernetes(step)
        if kubernetes:
            platform_executors[f"exec-{name}"] = kubernetes
        for output in step.outputs:
            key = root_output_key(step.name, output.name)
            kind = output_parameter_type(output)
            if kind:
                root_outputs.setdefault("parameters", {})[key] = {"parameterType": kind}
                root_selectors.setdefault("parameters", {})[key] = {
                    "valueFromParameter": {
                        "outputParameterKey": output.name,
                        "producerSubtask": name,
                    }
                }
            else:
                root_outputs.setdefault("artifacts", {})[key] = {
                    "artifactType": artifact_type(output)
                }
                root_selectors.setdefault("artifacts", {})[key] = {
                    "artifactSelectors": [
                        {"outputArtifactKey": output.name, "producerSubtask": name}
                    ]
                }
    root: dict[str, Any] = {"dag": {"tasks": tasks}}
    if root_selectors:
        root["dag"]["outputs"] = root_selectors
        root["outputDefinitions"] = root_outputs
    if parameters:
        root["inputDefinitions"] = {
            "parameters": {p.name: _parameter_spec(p) for p in pipeline.parameters}
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


def _parameter_spec(parameter: ir.Parameter) -> dict[str, Any]:
    spec: dict[str, Any] = {"parameterType": parameter_type(parameter)}
    if not parameter.required:
        spec["isOptional"] = True
        if parameter.default is not None:
            spec["defaultValue"] = parameter.default
    return spec


def _component_and_task(
    step: ir.Step,
    parameters: dict[str, ir.Parameter],
    producers: dict[str, ir.Step],
    kfp_caching: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    inputs_def: dict[str, Any] = {"parameters": {RUN_UUID_INPUT: {"parameterType": "STRING"}}}
    task_inputs: dict[str, Any] = {
        "parameters": {RUN_UUID_INPUT: {"runtimeValue": {"constant": RUN_UUID_VALUE}}}
    }
    params_def, params_in = inputs_def["parameters"], task_inputs["parameters"]
    for ref in step.inputs:
        key = input_key(ref.name)
        if ref.kind == "parameter":
            params_def[key] = _parameter_spec(parameters[str(ref.parameter)])
            params_in[key] = {"componentInputParameter": ref.parameter}
        elif ref.kind == "constant":
            if ref.value is None:  # a null constant has no KFP type; the IR holds it
                continue
            params_def[key] = {
                "parameterType": value_type(ref.value),
                "isOptional": True,
                "defaultValue": ref.value,
            }
            params_in[key] = {"runtimeValue": {"constant": ref.value}}
        else:
            producer = ir.k8s_name(str(ref.step))
            upstream = producers[str(ref.step)].output(str(ref.output))
            kind = output_parameter_type(upstream)
            if kind:
                params_def[key] = {"parameterType": kind}
                params_in[key] = {
                    "taskOutputParameter": {
                        "outputParameterKey": ref.output,
                        "producerTask": producer,
                    }
                }
            else:
                inputs_def.setdefault("artifacts", {})[key] = {
                    "artifactType": artifact_type(upstream)
                }
                task_inputs.setdefault("artifacts", {})[key] = {
                    "taskOutputArtifact": {
                        "outputArtifactKey": ref.output,
                        "producerTask": producer,
                    }
                }
    component: dict[str, Any] = {
        "executorLabel": f"exec-{ir.k8s_name(step.name)}",
        "inputDefinitions": inputs_def,
    }
    outputs: dict[str, Any] = {"artifacts": {METRICS_OUTPUT: {"artifactType": METRICS_TYPE}}}
    for output in step.outputs:
        kind = output_parameter_type(output)
        if kind:
            outputs.setdefault("parameters", {})[output.name] = {"parameterType": kind}
        else:
            outputs.setdefault("artifacts", {})[output.name] = {
                "artifactType": artifact_type(output)
            }
    component["outputDefinitions"] = outputs
    task: dict[str, Any] = {
        "cachingOptions": {"enableCache": bool(step.cache and kfp_caching)},
        "inputs": task_inputs,
    }
    if step.upstream:
        task["dependentTasks"] = [ir.k8s_name(name) for name in step.upstream]
    retry = step.retry
    if retry.max_retries:
        most = DEFAULT_BACKOFF_MAX_S if retry.max_delay_s is None else retry.max_delay_s
        task["retryPolicy"] = {
            "maxRetryCount": retry.max_retries,
            "backoffDuration": duration(retry.delay_s),
            "backoffFactor": retry.backoff_factor,
            "backoffMaxDuration": duration(most),
        }
    return component, task


def _container(
    step: ir.Step, options: CompileOptions, ir_uri: str, ir_sha256: str
) -> dict[str, Any]:
    argv = ["--ir", ir_uri, "--ir-sha256", ir_sha256, "--step", step.name, "--run-id", RUN_ID]
    if options.code_archive and options.code_archive_uri:
        argv += [
            "--code-archive",
            options.code_archive_uri,
            "--code-archive-sha256",
            str(options.code_archive_sha256),
        ]
    if options.components_uri:
        argv += ["--components", options.components_uri]
        argv += ["--components-sha256", str(options.components_sha256)]
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
    resources = _resources(step)
    if resources:
        container["resources"] = resources
    return container


def _resources(step: ir.Step) -> dict[str, Any]:
    """Both generations of KFP's resource fields, as the kfp SDK writes them."""
    resources: dict[str, Any] = {}
    cpu, memory = step.resources.cpu, step.resources.memory
    if cpu:
        resources["resourceCpuLimit"] = resources["resourceCpuRequest"] = cpu
        number = float(parse_quantity(cpu) or 0)
        resources["cpuLimit"] = resources["cpuRequest"] = number
    if memory:
        resources["resourceMemoryLimit"] = resources["resourceMemoryRequest"] = memory
        # The old fields count gigabytes (10**9 bytes), as the kfp SDK converts them.
        number = float(parse_quantity(memory) or 0) / 10**9
        resources["memoryLimit"] = resources["memoryRequest"] = number
    if step.resources.gpu:
        gpu = (step.settings.get("kubernetes") or {}).get("gpu_resource", "nvidia.com/gpu")
        resources["accelerator"] = {
            "type": gpu,
            "count": step.resources.gpu,
            "resourceType": gpu,
            "resourceCount": str(step.resources.gpu),
        }
    return resources


def _kubernetes(step: ir.Step) -> dict[str, Any]:
    settings = step.settings.get("kubernetes") or {}
    config: dict[str, Any] = {}
    if settings.get("node_selector"):
        config["nodeSelector"] = {"labels": dict(settings["node_selector"])}
    if settings.get("tolerations"):
        config["tolerations"] = [
            {("tolerationSeconds" if k == "toleration_seconds" else k): v for k, v in t.items()}
            for t in settings["tolerations"]
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
        config["imagePullSecret"] = [{"secretName": n} for n in settings["image_pull_secrets"]]
    if step.timeout_s:
        config["activeDeadlineSeconds"] = math.ceil(step.timeout_s)
    return config


def lightweight_argv(argv: list[str]) -> str:
    """Entrypoint arguments as one JSON element of the lightweight command.

    kfp.local swaps every ``python3`` in a command for its interpreter, so the text is written
    with that word escaped (``\\u0070ython3``); JSON decodes it back unchanged.
    """
    return json.dumps(argv, ensure_ascii=False).replace("python3", "\\u0070ython3")


#: String fields whose values are enums: kept in a shape (other strings can be any text).
_ENUM_KEYS = frozenset({"parameterType", "strategy", "imagePullPolicy", "operator", "effect"})


def _shape(value: Any, key: str = "") -> Any:
    """What decides whether protobuf's JSON parser accepts ``value``: its structure, field
    names, numbers and enum strings; any other string is accepted whatever its text."""
    if isinstance(value, dict):
        return tuple(sorted((k, _shape(v, k)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_shape(v) for v in value)
    if isinstance(value, str):
        return value if key in _ENUM_KEYS else ""
    return (type(value).__name__, value)


def _one_per_shape(mapping: dict[str, Any]) -> dict[str, Any]:
    """The entries of a map field, one per shape: the others parse exactly alike."""
    kept: dict[Any, tuple[str, Any]] = {}
    for name, value in mapping.items():
        kept.setdefault(_shape(value), (name, value))
    return dict(kept.values())


def _reduced(spec: dict[str, Any]) -> dict[str, Any]:
    """The PipelineSpec with its per-step maps cut to one entry per shape (a 1,000-step
    pipeline of similar steps parses in a few entries instead of thousands)."""
    root = dict(spec["root"])
    dag = dict(root["dag"])
    dag["tasks"] = _one_per_shape(dag["tasks"])
    if "outputs" in dag:
        dag["outputs"] = {k: _one_per_shape(v) for k, v in dag["outputs"].items()}
    root["dag"] = dag
    if "outputDefinitions" in root:
        root["outputDefinitions"] = {
            k: _one_per_shape(v) for k, v in root["outputDefinitions"].items()
        }
    return {
        **spec,
        "components": _one_per_shape(spec["components"]),
        "deploymentSpec": {},
        "root": root,
    }


def validate(spec: dict[str, Any], platform: dict[str, Any]) -> None:
    """Parse the spec strictly into the real protobuf messages before anything is written.

    Entries that only differ in free text are parsed once (see :func:`_shape`), which keeps a
    1,000-step compile well under a second; every distinct structure, number and enum value
    is parsed.

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
    # against ExecutorSpec instead.
    checks: list[tuple[str, dict[str, Any], Any]] = [
        ("the PipelineSpec", _reduced(spec), pb.PipelineSpec)
    ]
    for label, executor in _one_per_shape(spec["deploymentSpec"]["executors"]).items():
        checks.append((f"executor {label}", executor, pb.PipelineDeploymentConfig.ExecutorSpec))
    if platform:
        configs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        outline: dict[str, Any] = {"platforms": {"kubernetes": {"deploymentSpec": {}}}}
        checks.append(("the platform spec", outline, pb.PlatformSpec))
        for label, config in _one_per_shape(configs).items():
            if k8s is not None:
                message = k8s.KubernetesExecutorConfig
                checks.append((f"Kubernetes settings of {label}", config, message))
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
