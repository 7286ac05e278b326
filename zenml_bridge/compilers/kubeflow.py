"""The ``kubeflow`` target: a Kubeflow Pipelines v2 PipelineSpec (YAML) from the pipeline IR.

The spec is built as plain dicts in KFP's own JSON field names (:mod:`.kubeflow_spec`) and
validated against the real protobuf messages of ``kfp-pipeline-spec`` (and ``kfp-kubernetes``
when installed) before it is dumped. Dicts rather than protobuf objects because proto3 drops
default values when turned back into data (``enableCache: false`` would vanish, and caching
must be written explicitly) and because dicts dump to YAML several times faster. Nothing is
text-templated: user text is only ever a YAML scalar, escaped by the YAML emitter.

Each step becomes one component, one executor and one task. Executors call our entrypoint; a
task's parameters arrive in the executor input (``{{$}}``), typed by KFP, and the run id comes
from KFP's run uuid (a task input the driver resolves), so that every task of a KFP run records
into the same run of ours and every KFP run into its own.
"""

from __future__ import annotations

import json
import keyword
from pathlib import Path
from typing import Any, ClassVar

from zenml_bridge import ir
from zenml_bridge.compilers import kubeflow_checks as checks
from zenml_bridge.compilers.base import (
    CompileOptions,
    Compiler,
    CompileResult,
    Problem,
    quantity_problem,
    write_atomic,
)
from zenml_bridge.compilers.kubeflow_spec import (
    METRICS_OUTPUT,
    RUN_UUID_INPUT,
    build_spec,
    dump_yaml,
    input_key,
    output_parameter_type,
    root_output_key,
    validate,
)

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
#: ``--kfp-caching``: KFP's own cache is off unless asked for (ours serves unchanged steps).
KFP_CACHING = ("off", "on")


def kfp_cron(schedule: str) -> str | None:
    """The schedule as KFP's six-field cron (seconds first), or None if it has no such form."""
    if schedule in PRESETS:
        return PRESETS[schedule]
    fields = schedule.split()
    return "0 " + " ".join(fields) if len(fields) == 5 else None


def kfp_caching(options: CompileOptions) -> bool:
    """True when the compile asked for KFP's own caching (``--kfp-caching on``)."""
    return str(options.extra.get("kfp_caching", "off")) == "on"


class KubeflowCompiler(Compiler):
    """Writes a KFP v2 PipelineSpec YAML (plus the Kubernetes platform spec document).

    Example:
        >>> from zenml_bridge.compilers import get_compiler
        >>> get_compiler("kubeflow").compile(pipeline_ir, options)   # doctest: +SKIP
    """

    target = "kubeflow"
    SUPPORTS_SCHEDULE = False
    SUPPORTS_RESOURCES = SUPPORTS_RETRIES = SUPPORTS_TIMEOUT = True
    RUNS_ON_WORKERS = True
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
        problems = self.shared_problems(pipeline, options) + self._check_pipeline(pipeline, options)
        seen: dict[str, str] = {}
        outputs: dict[str, str] = {}
        for step in pipeline.steps:
            key = ir.k8s_name(step.name)
            if key in seen:
                problems.append(
                    _error(step.name, "name", f"maps to the Kubernetes name {key!r} like step "
                           f"'{seen[key]}'; rename one of them")
                )  # fmt: skip
            seen.setdefault(key, step.name)
            for output in step.outputs:
                exposed = root_output_key(step.name, output.name)
                if exposed in outputs:
                    problems.append(
                        _error(step.name, "outputs", f"output {output.name!r} is exposed as the "
                               f"pipeline output {exposed!r} like one of step "
                               f"'{outputs[exposed]}'; rename one of them")
                    )  # fmt: skip
                outputs.setdefault(exposed, step.name)
            problems += self._check_step(step, options)
        return problems

    def _check_pipeline(self, pipeline: ir.Pipeline, options: CompileOptions) -> list[Problem]:
        problems = []
        if pipeline.schedule:
            cron = kfp_cron(pipeline.schedule)
            reason = (
                checks.cron_problem(pipeline.schedule) if pipeline.schedule not in PRESETS else None
            )
            sidecar = self.schedule_path(self.out_path(pipeline, options)).name
            if cron is None or reason:
                problems.append(
                    _error(None, "schedule", f"{pipeline.schedule!r} is not a cron KFP can run"
                           f" ({reason or 'no cron form'}); use a five-field cron or "
                           "@hourly/@daily/@weekly/...")
                )  # fmt: skip
            else:
                problems.append(
                    Problem("warning", None, "schedule", "a PipelineSpec cannot hold a "
                            f"schedule; it is written beside the output as {sidecar} (cron "
                            f"{cron!r}) for a KFP recurring run")
                )  # fmt: skip
        if options.executor not in self.EXECUTORS:
            problems.append(
                _error(None, "executor", f"unknown executor {options.executor!r}; use one of "
                       f"{', '.join(self.EXECUTORS)}")
            )  # fmt: skip
        caching = str(options.extra.get("kfp_caching", "off"))
        if caching not in KFP_CACHING:
            problems.append(
                _error(None, "kfp_caching", f"{caching!r} is not 'on' or 'off'; pass "
                       "--kfp-caching on|off")
            )  # fmt: skip
        if caching == "on" and options.executor == "lightweight":
            problems.append(
                Problem("warning", None, "kfp_caching", "kfp.local's cache key leaves out the "
                        "run uuid (KFP's backend keeps it in), so kfp.local serves whole runs "
                        "from its cache and they are not recorded; test with --kfp-caching off")
            )  # fmt: skip
        if not options.ir_uri:
            problems.append(
                _error(None, "ir", "the IR has no published URI for workers; compile with the "
                       "CLI (zenml-bridge compile ... --target kubeflow), which stores it first")
            )  # fmt: skip
        if options.image and (reason := checks.image_problem(options.image)):
            problems.append(_error(None, "--image", f"{reason}; fix --image"))
        root = options.extra.get("worker_artifact_root")
        if options.executor == "container" and root and _is_local(str(root)):
            problems.append(
                Problem("warning", None, "artifact root", f"{root} is a local folder: the IR, "
                        "code and artifacts are stored there, and KFP's pods only see them if "
                        "every pod mounts it at that path; use an s3:// or gs:// artifact root "
                        "(ZENML_BRIDGE_ARTIFACT_ROOT) for a cluster")
            )  # fmt: skip
        return problems

    def _check_step(self, step: ir.Step, options: CompileOptions) -> list[Problem]:
        problems = []
        if options.executor == "container" and not (step.image or options.image):
            problems.append(
                _error(step.name, "image", "a container executor needs an image with "
                       "zenml-bridge installed; pass --image IMAGE or set @step(image=...)")
            )  # fmt: skip
        if step.image and (reason := checks.image_problem(step.image)):
            problems.append(_error(step.name, "image", f"{reason}; fix @step(image=...)"))
        for what, quantity in (("cpu", step.resources.cpu), ("memory", step.resources.memory)):
            problem = None if quantity is None else quantity_problem(step.name, what, quantity)
            if problem:
                problems.append(problem)
        keys = [input_key(ref.name) for ref in step.inputs]
        if RUN_UUID_INPUT in keys:
            problems.append(
                _error(step.name, "inputs", f"the argument name {RUN_UUID_INPUT!r} is reserved "
                       "for the KFP run id; rename the argument")
            )  # fmt: skip
        clashes = sorted({k for k in keys if keys.count(k) > 1})
        if clashes:
            problems.append(
                _error(step.name, "inputs", f"arguments {', '.join(clashes)} map to the same "
                       "KFP input name (a '.' becomes '-'); rename one of them")
            )  # fmt: skip
        if any(o.name == METRICS_OUTPUT for o in step.outputs):
            problems.append(
                _error(step.name, "outputs", f"the output name {METRICS_OUTPUT!r} is reserved "
                       "for the step's logged metrics in KFP; rename the output")
            )  # fmt: skip
        retry = step.retry
        if retry.max_retries and not float(retry.backoff_factor).is_integer():
            problems.append(
                _error(step.name, "retry_backoff", f"{retry.backoff_factor} is not a whole "
                       "number; KFP's Argo backend reads the backoff factor as an integer and "
                       "fails the task otherwise. Use 1, 2, 3, ...")
            )  # fmt: skip
        if retry.max_retries and not float(retry.delay_s).is_integer():
            problems.append(
                Problem("warning", step.name, "retry_delay", f"{retry.delay_s}s: KFP's Argo "
                        "backend keeps whole seconds of the backoff only")
            )  # fmt: skip
        if options.executor == "lightweight":
            problems += [
                _error(step.name, "outputs", f"output name {o.name!r} cannot be a Python "
                       "argument name, which the lightweight executor needs; rename it")
                for o in step.outputs
                if not output_parameter_type(o)
                and (not o.name.isidentifier() or keyword.iskeyword(o.name))
            ]  # fmt: skip
        return problems + _check_kubernetes(step)

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
        if options.executor == "lightweight":
            notes = [
                f"{out.name} uses the lightweight executor, made for testing with kfp.local "
                "(docs/kubeflow.md); for a cluster compile without --executor lightweight and "
                "with --image"
            ]
        else:
            notes = [f"upload {out.name} in the KFP UI or with kfp.Client().upload_pipeline(...)"]
        if pipeline.schedule:
            sidecar = self.schedule_path(out)
            schedule = {
                "pipeline": spec["pipelineInfo"]["name"],
                "pipeline_package_path": out.name,
                "schedule": pipeline.schedule,
                "cron_expression": kfp_cron(pipeline.schedule),
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
        return build_spec(pipeline, options, kfp_caching(options))


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


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
            continue
        for key, item in value.items():
            reason = checks.qualified_name_problem(key) or (
                checks.label_value_problem(item) if name != "annotations" else None
            )
            if reason:
                problems.append(_error(step.name, where(name), reason))
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
    else:
        for env_var, ref in secret_env.items():
            reason = (
                checks.env_name_problem(env_var)
                or checks.dns_subdomain_problem(ref["secret"], "Secret name")
                or checks.secret_key_problem(ref["key"])
            )
            if reason:
                problems.append(_error(step.name, where("secret_env"), reason))
    pulls = settings.get("image_pull_secrets", [])
    if not isinstance(pulls, list) or not all(isinstance(n, str) for n in pulls):
        problems.append(_error(step.name, where("image_pull_secrets"), "must be a list of names"))
    else:
        problems += [
            _error(step.name, where("image_pull_secrets"), reason)
            for n in pulls
            if (reason := checks.dns_subdomain_problem(n, "Secret name"))
        ]
    policy = settings.get("image_pull_policy")
    if policy is not None and policy not in checks.PULL_POLICIES:
        problems.append(
            _error(step.name, where("image_pull_policy"), f"{policy!r} is not one of "
                   f"{', '.join(checks.PULL_POLICIES)}" + ir.did_you_mean(str(policy),
                   checks.PULL_POLICIES))
        )  # fmt: skip
    return problems


__all__ = ["KubeflowCompiler"]
