"""The step side of the Kubeflow backend: KFP's executor input in, KFP's executor output out.

A KFP task calls ``python -m zenml_bridge.entrypoint run-step ... --kfp-executor-input '{{$}}'``.
From that JSON this module gives the entrypoint

- the run's parameter values (typed by KFP, converted back to the IR's types),
- the upstream outputs the step reads, as recorded in the metadata of KFP's input artifacts
  (so a step still finds its inputs when KFP served an upstream task from KFP's own cache and
  that task never ran in this run),

and after the step it writes KFP's output metadata: every KFP output artifact carries a small
JSON pointer to our artifact (uri, sha256, materializer) as its content and the same fields as
its metadata, so KFP's UI and lineage show the artifacts that our stores hold.

``lightweight_function`` is the in-process executor of ``--executor lightweight``: it lets
``kfp.local`` (and KFP's Python executor) run the same entrypoint without a container.

Example:
    >>> parameters = kfp_io.read_parameters(executor_input_json, pipeline)   # doctest: +SKIP
    >>> kfp_io.write_kfp_outputs(executor_input_json, step_result)           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from zenml_bridge import ir
from zenml_bridge.errors import STOP_EXIT_CODE, BridgeError

#: Key of our fields in a KFP artifact's metadata.
METADATA_KEY = "zenml_bridge"
POINTER_FIELDS = ("id", "uri", "sha256", "materializer", "version", "type")
#: The flag that carries the entrypoint's arguments in the lightweight executor's command.
LIGHTWEIGHT_ARGV_FLAG = "--zenml-bridge-run-step"
#: The KFP Metrics artifact every task declares (the compiler's name for it).
METRICS_OUTPUT = "step_metrics"
#: Emulation only: a folder that stands for the pod's ``/`` (see :func:`local_path`).
POD_ROOT_ENV = "ZENML_BRIDGE_KFP_POD_ROOT"
#: Where KFP's launcher makes remote artifact URIs visible as local files (as the KFP SDK).
_MOUNTS = (("gs://", "/gcs/"), ("minio://", "/minio/"), ("s3://", "/s3/"), ("oci://", "/oci/"))


def parse_executor_input(text: str | Mapping[str, Any]) -> dict[str, Any]:
    """The executor input as data; a clear error when it is not KFP's JSON."""
    if isinstance(text, Mapping):
        return dict(text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BridgeError(
            f"--kfp-executor-input is not JSON ({exc}). KFP passes it as '{{{{$}}}}'; compile "
            "the pipeline again with `zenml-bridge compile --target kubeflow`."
        ) from None
    if not isinstance(data, dict) or "outputs" not in data:
        raise BridgeError(
            "--kfp-executor-input has no 'outputs'; it is not a KFP executor input. Compile the "
            "pipeline again with `zenml-bridge compile --target kubeflow`."
        )
    return data


def _convert(parameter: ir.Parameter, value: Any) -> Any:
    """A KFP parameter value back in the IR's type (KFP numbers may arrive as floats)."""
    kind = parameter.type.replace(" ", "").removesuffix("|None")
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and kind != "str" and not isinstance(parameter.default, str):
        # A parameter without a KFP type of its own travels as text: read it as the CLI's -p.
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def read_parameters(
    executor_input: str | Mapping[str, Any], pipeline: ir.Pipeline, step: ir.Step
) -> dict[str, Any]:
    """The pipeline parameter values this task received (by pipeline parameter name).

    A task's inputs are the step's own arguments (the compiler keys them by argument name);
    an argument fed by a pipeline parameter carries that parameter's value, missing when KFP
    left an optional parameter out (its default then applies).
    """
    data = parse_executor_input(executor_input)
    given = data.get("inputs", {}).get("parameterValues", {}) or {}
    known = {p.name: p for p in pipeline.parameters}
    values: dict[str, Any] = {}
    for ref in step.inputs:
        key = ref.name.replace(".", "-")
        if ref.kind == "parameter" and given.get(key) is not None:
            parameter = known[str(ref.parameter)]
            values[parameter.name] = _convert(parameter, given[key])
    return values


def run_parameters(
    executor_input: str | Mapping[str, Any],
    pipeline: ir.Pipeline,
    step: ir.Step,
    overrides: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(values, received)``: the run's parameters as far as this task knows them, and the
    ones it received from KFP (checked against their declared types).

    A task only receives the parameters its step reads, so a required parameter of another
    step is absent here (not an error); ``values`` holds the defaults of the others.
    """
    received = {**read_parameters(executor_input, pipeline, step), **overrides}
    relaxed = dataclasses.replace(
        pipeline,
        parameters=tuple(dataclasses.replace(p, required=False) for p in pipeline.parameters),
    )
    ir.check_run_parameters(relaxed, received)
    values = {p.name: p.default for p in pipeline.parameters if not p.required}
    values.update(received)
    return values, received


def merge_run_parameters(store: Any, run_id: str, received: Mapping[str, Any]) -> None:
    """Add the parameters this task received to the run's record.

    Each task of a KFP run knows only its step's parameters, so the run's record is the union
    over its tasks. The update is a compare-and-set on the stored text, repeated when another
    task changed it meanwhile, so concurrent tasks never lose each other's values.
    """
    if not received:
        return
    import sqlalchemy as sa

    runs = store.t.runs
    for _ in range(50):
        with store._read() as conn:
            old = conn.execute(
                sa.select(runs.c.parameters).where(runs.c.run_id == run_id)
            ).scalar_one_or_none()
        if old is None:
            return
        current = json.loads(old)
        merged = {**current, **received}
        if merged == current:
            return
        new = json.dumps(merged, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        query = (
            runs.update()
            .where(runs.c.run_id == run_id, runs.c.parameters == old)
            .values(parameters=new)
        )
        if store._write(lambda c, q=query: c.execute(q).rowcount):
            return
    raise BridgeError(f"Could not record the parameters of run {run_id}: the row kept changing.")


def read_upstream(
    executor_input: str | Mapping[str, Any], step: ir.Step, store: Any = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """Upstream outputs (step -> output -> info) recorded in the KFP input artifacts.

    Anyone who can edit KFP's metadata can write these pointers, so a pointer is only used when
    the metadata store holds the same artifact (id, uri, content hash, materializer), and never
    when it names a pickle-based materializer for a step that did not opt in with
    ``@step(allow_pickle=True)``: loading a pickle runs code.

    Raises:
        BridgeError: a pointer names a pickle for a step without the opt-in, or does not match
            the metadata store's record of that artifact.
    """
    data = parse_executor_input(executor_input)
    artifacts = data.get("inputs", {}).get("artifacts", {}) or {}
    upstream: dict[str, dict[str, dict[str, Any]]] = {}
    for ref in step.inputs:
        if ref.kind != "output":
            continue
        # The compiler names the KFP input of ``parts.0`` (a *args item) ``parts-0``.
        listed = (artifacts.get(ref.name.replace(".", "-")) or {}).get("artifacts") or []
        info = ((listed[0].get("metadata") or {}).get(METADATA_KEY) if listed else None) or {}
        if all(key in info for key in POINTER_FIELDS):
            fields = {key: info[key] for key in POINTER_FIELDS}
            _check_pointer(step, ref.name, fields, store)
            upstream.setdefault(str(ref.step), {})[str(ref.output)] = fields
    return upstream


def _check_pointer(step: ir.Step, name: str, pointer: Mapping[str, Any], store: Any) -> None:
    from zenml_bridge.materializers import registry

    where = f"Step '{step.name}' input '{name}'"
    try:
        materializer = registry.get(str(pointer["materializer"]))
    except BridgeError:
        raise BridgeError(
            f"{where}: the KFP artifact names the unknown materializer "
            f"{pointer['materializer']!r}; it was not written by zenml-bridge. Run the upstream "
            "step again (start a new KFP run)."
        ) from None
    if getattr(materializer, "requires_opt_in", False) and not step.allow_pickle:
        raise BridgeError(
            f"{where}: the KFP artifact points at a pickle ({pointer['materializer']}), and "
            f"loading a pickle runs code; step '{step.name}' did not opt in. Set "
            "@step(allow_pickle=True) on it if the artifact store is trusted."
        )
    if store is None:
        return
    arts = store.t.artifacts
    import sqlalchemy as sa

    with store._read() as conn:
        row = conn.execute(
            sa.select(arts.c.uri, arts.c.content_sha256, arts.c.materializer).where(
                arts.c.artifact_id == str(pointer["id"])
            )
        ).first()
    recorded = None if row is None else (row.uri, row.content_sha256, row.materializer)
    if recorded != (pointer["uri"], pointer["sha256"], pointer["materializer"]):
        raise BridgeError(
            f"{where}: the KFP artifact's pointer (artifact {pointer['id']!r}) does not match "
            "the metadata store's record of it"
            + (" (no such artifact)" if row is None else " (uri, hash or materializer differ)")
            + "; it was not written by this store. Check ZENML_BRIDGE_METADATA_URL on the "
            "workers, or start a new KFP run."
        )


def local_path(uri: str) -> str:
    """The local file of a KFP artifact URI (remote stores are mounted by KFP's launcher).

    ``ZENML_BRIDGE_KFP_POD_ROOT`` (unset in a real pod) rebases the pod's absolute paths
    under a folder: the test harness that emulates KFP's backend runs every task on one machine.
    """
    path = uri.removeprefix("file://")
    for prefix, mount in _MOUNTS:
        if uri.startswith(prefix):
            path = mount + uri[len(prefix) :]
            break
    pod_root = os.environ.get(POD_ROOT_ENV)
    return pod_root.rstrip("/") + path if pod_root and path.startswith("/") else path


def _outputs_of(step_result: Any) -> Mapping[str, Mapping[str, Any]]:
    outputs = step_result.outputs if hasattr(step_result, "outputs") else step_result
    return {name: dict(info) for name, info in outputs.items()}


def write_kfp_outputs(
    executor_input: str | Mapping[str, Any],
    step_result: Any,
    load: Callable[[Mapping[str, Any]], Any] | None = None,
    metrics: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Point KFP's output artifacts at our artifacts and write KFP's executor output file.

    Args:
        executor_input: KFP's executor input (JSON text or data).
        step_result: a :class:`~zenml_bridge.runtime.step_runner.StepResult` (or a mapping
            output name -> info with ``uri``, ``sha256``, ``materializer``, ...).
        load: reads an output's value from its info; needed when the task declares output
            parameters (scalar outputs an outer KFP pipeline can branch on).
        metrics: the metrics the step logged, for the task's KFP Metrics artifact.

    Returns:
        The executor output written (``{"artifacts": {...}, "parameterValues": {...}}``).
    """
    data = parse_executor_input(executor_input)
    outputs = _outputs_of(step_result)
    values = _output_parameters(data, outputs, load)
    written: dict[str, Any] = {}
    for name, listed in (data["outputs"].get("artifacts") or {}).items():
        artifact = (listed.get("artifacts") or [{}])[0]
        if name == METRICS_OUTPUT and name not in outputs:
            written[name] = _metrics_artifact(name, artifact, dict(metrics or {}))
            continue
        info = outputs.get(name)
        if info is None:
            raise BridgeError(
                f"KFP expects the output '{name}', which the step did not produce. The YAML "
                "and the stored IR disagree; compile the pipeline again."
            )
        pointer = {key: info.get(key) for key in POINTER_FIELDS}
        path = local_path(str(artifact.get("uri", "")))
        if path:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(pointer, handle, sort_keys=True)
        metadata = {**(artifact.get("metadata") or {}), METADATA_KEY: pointer}
        metadata.update(uri=pointer["uri"], sha256=pointer["sha256"])
        written[name] = {
            "artifacts": [
                {
                    "name": artifact.get("name", name),
                    "uri": artifact.get("uri", ""),
                    "metadata": metadata,
                }
            ]
        }
    result: dict[str, Any] = {"artifacts": written} if written else {}
    if values:
        result["parameterValues"] = values
    output_file = data["outputs"].get("outputFile")
    if output_file:
        path = local_path(output_file)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(result, handle, sort_keys=True)
        os.replace(tmp, path)
    return result


def _metrics_artifact(name: str, artifact: Mapping[str, Any], metrics: dict[str, float]) -> Any:
    """KFP's Metrics artifact: the metrics as its metadata (what KFP's UI reads) and file."""
    path = local_path(str(artifact.get("uri", "")))
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(metrics, handle, sort_keys=True)
    return {
        "artifacts": [
            {
                "name": artifact.get("name", name),
                "uri": artifact.get("uri", ""),
                "metadata": metrics,
            }
        ]
    }


def _output_parameters(
    data: Mapping[str, Any],
    outputs: Mapping[str, Mapping[str, Any]],
    load: Callable[[Mapping[str, Any]], Any] | None,
) -> dict[str, Any]:
    """Values of the declared output parameters, also written to their output files (the
    launcher reads those when the executor output lacks a value; kfp.local always does)."""
    declared = data["outputs"].get("parameters") or {}
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        info = outputs.get(name)
        if info is None or load is None:
            raise BridgeError(
                f"KFP expects the output parameter '{name}', which the step did not produce. "
                "The YAML and the stored IR disagree; compile the pipeline again."
            )
        value = load(info)
        values[name] = value
        path = local_path(str(spec.get("outputFile", "")))
        if path:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(value if isinstance(value, str) else json.dumps(value))
    return values


# -- the lightweight executor ---------------------------------------------------------------


def _argv_value(argv: list[str], flag: str) -> str:
    try:
        return argv[argv.index(flag) + 1]
    except (ValueError, IndexError):
        raise BridgeError(
            f"The lightweight executor was started without {flag}. Compile the pipeline again "
            "with `zenml-bridge compile --target kubeflow --executor lightweight`."
        ) from None


def lightweight_function(argv: list[str] | None = None) -> Callable[..., None]:
    """The function KFP's Python executor calls for one step of a lightweight component.

    KFP's executor hands a function its output artifacts by the names in its signature, and
    writes the executor output from them afterwards; so the signature is built from this task's
    executor input, and the function runs our entrypoint in this process, then copies the
    metadata it wrote onto KFP's artifact objects.
    """
    argv = list(sys.argv if argv is None else argv)
    executor_input_text = _argv_value(argv, "--executor_input")
    run_step_argv = json.loads(_argv_value(argv, LIGHTWEIGHT_ARGV_FLAG))
    data = parse_executor_input(executor_input_text)
    input_names = list(data.get("inputs", {}).get("artifacts") or {})
    output_names = list(data["outputs"].get("artifacts") or {})

    from kfp.dsl import Artifact, Output

    def zenml_bridge_step(**artifacts: Any) -> None:
        from zenml_bridge.runtime.worker import main

        command = ["run-step", *run_step_argv, "--kfp-executor-input", executor_input_text]
        try:
            code = main(command)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        if code == STOP_EXIT_CODE:
            # KFP has no "skipped" for a task that ran: the task fails, our run is stopped.
            raise RuntimeError(
                f"zenml-bridge step stopped the pipeline (StopPipeline, exit {code}); the reason "
                "is in the log above and the run is recorded stopped."
            )
        if code:
            raise RuntimeError(f"zenml-bridge step failed (exit {code}); see the log above.")
        with open(local_path(data["outputs"]["outputFile"]), encoding="utf-8") as handle:
            written = json.load(handle).get("artifacts", {})
        for name, artifact in artifacts.items():
            artifact.metadata.update(written[name]["artifacts"][0]["metadata"])

    annotations: dict[str, Any] = {name: Artifact for name in input_names}
    annotations.update({name: Output[Artifact] for name in output_names})
    zenml_bridge_step.__annotations__ = annotations
    zenml_bridge_step.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Output[Artifact])
            for name in output_names
        ]
    )
    return zenml_bridge_step


def write_task_outputs(
    executor_input: str, step_result: Any, stack: Any, run_id: str
) -> dict[str, Any]:
    """:func:`write_kfp_outputs` with output values read from the stack's artifact store and
    the step's logged metrics from the metadata store."""
    from zenml_bridge.materializers import registry

    def load(info: Mapping[str, Any]) -> Any:
        loader = registry.get(str(info["materializer"]))
        return stack.artifacts.read(info["uri"], info["sha256"], loader.load)

    row = stack.metadata.step_runs(run_id).get(step_result.name) or {}
    return write_kfp_outputs(executor_input, step_result, load, row.get("metrics") or {})
