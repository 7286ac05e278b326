"""``run_step``: the one function that runs a step, for the local runner and the entrypoint.

Resolve inputs, compute the cache key, serve a cache hit or call the step, materialize the
outputs, record everything in one metadata transaction, call hooks and the tracker.

The cache key is sha256 over the step's source and code hash (by default its module and the
project modules it imports, see ``dsl.codehash``), its parameter values normalized to their
declared types, the content hashes and materializers of its inputs, its output names, its cache
salt, its environment variables and, with ``cache_env``, the versions of the libraries it
imports. A hit is used only when every recorded output materializer still has the same version
and every cached artifact is intact (``runtime.integrity.verify_hit``); it keeps the metrics and
metadata of the run that produced it. A hit never imports the step's module (only when a recorded
materializer is unknown, or of another version, without it: the module may register it). A step
that executes is first checked against the IR's code hash. A fresh execution replaces the cache
entry.

A step's ``env`` is set in ``os.environ`` while its function runs and restored afterwards. The
environment is process-wide, so the local runner never runs a step with ``env`` at the same time
as another step (see ``runtime.local``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from zenml_bridge import ir
from zenml_bridge.errors import BridgeError, StopPipeline, disk_full_error
from zenml_bridge.runtime import integrity
from zenml_bridge.runtime.context import StepContext, step_context, step_inputs
from zenml_bridge.runtime.stack import Stack
from zenml_bridge.runtime.tracking import RunInfo, StepInfo
from zenml_bridge.stores.metadata import as_recorded
from zenml_bridge.stores.run_values import log_values

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CALLABLES: dict[str, tuple[Any, Callable[[Mapping[str, Any]], Any]]] = {}

#: One output as recorded: artifact id, uri, sha256, materializer, version, type.
OutputInfo = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """What running one step gave."""

    name: str
    status: str  # completed | cached | failed | stopped | skipped
    outputs: Mapping[str, OutputInfo] = field(default_factory=dict)
    duration_s: float = 0.0
    cache_key: str | None = None
    attempt: int = 1
    error: BaseException | None = field(default=None, compare=False)
    traceback: str | None = None
    #: Why the step stopped the pipeline (``stopped``) or was not run (``skipped``).
    reason: str | None = None
    #: What the step logged (``log_metadata``/``log_metric``); a cache hit: its producer's.
    metadata: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)


def _materializers() -> Any:
    from zenml_bridge.materializers import registry

    return registry


def load_callable(source: str) -> Callable[[Mapping[str, Any]], Any]:
    """A caller of the step named by an IR ``source`` (``module:qualname``), imported once."""
    module_name, _, qualname = source.partition(":")
    cached = _CALLABLES.get(source)
    if cached is not None and sys.modules.get(module_name) is cached[0]:
        return cached[1]  # same module object: not reloaded since
    try:
        module: Any = importlib.import_module(module_name)
        target: Any = module
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise BridgeError(
            f"Cannot import the step function {source!r} ({type(exc).__name__}: {exc}). Steps "
            "must be module-level functions importable where the step runs: run from the "
            "project folder, install the project, or ship the code with a code archive."
        ) from None
    if hasattr(target, "call_with_inputs"):
        caller: Callable[[Mapping[str, Any]], Any] = target.call_with_inputs
    elif callable(target):
        signature = inspect.signature(target)
        func = target

        def caller(values: Mapping[str, Any]) -> Any:
            names = [n for n in signature.parameters if n in values]
            return func(**{n: values[n] for n in names})

    else:
        raise BridgeError(
            f"The step source {source!r} names a {type(target).__name__}, not a step."
        )
    _CALLABLES[source] = (module, caller)
    return caller


def step_parameters(step: ir.Step, run_parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Values of the step's parameter and constant inputs for a run."""
    values: dict[str, Any] = {}
    for ref in step.inputs:
        if ref.kind == "parameter":
            value = run_parameters.get(str(ref.parameter))
        elif ref.kind == "constant":
            value = ref.value
        else:
            continue
        # Normalized to the declared type: C=1 for a float is 1.0, with the same cache key.
        values[ref.name] = integrity.normalize_parameter(value, ref.type)
    return values


#: ``json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)``, without building
#: an encoder for every call (the encoder holds no state between calls).
_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def cache_key(
    step: ir.Step, parameters: Mapping[str, Any], inputs: Mapping[str, OutputInfo]
) -> str:
    payload = {
        "v": 1,
        "source": step.source,
        "code": step.code_hash,
        "parameters": parameters,
        "inputs": {
            name: [i["sha256"], i["materializer"], i["version"]] for name, i in inputs.items()
        },
        "outputs": [[o.name, o.materializer or ""] for o in step.outputs],
        "salt": step.cache_salt,
    }
    if step.env:  # only when set: keys of steps without env stay what they were
        payload["env"] = dict(step.env)
    if step.cache_env_hash:
        payload["libraries"] = step.cache_env_hash
    return hashlib.sha256(_KEY_JSON(payload).encode()).hexdigest()


_ENV_LOCK = threading.Lock()


@contextmanager
def step_env(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` in ``os.environ`` for the duration of the block, then restore it."""
    if not env:
        yield
        return
    with _ENV_LOCK:
        previous = {key: os.environ.get(key) for key in env}
        os.environ.update({key: str(value) for key, value in env.items()})
    try:
        yield
    finally:
        with _ENV_LOCK:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def artifact_id(run_id: str, step: str, output: str) -> str:
    return hashlib.sha256(f"{run_id}\0{step}\0{output}".encode()).hexdigest()[:24]


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without zenml-bridge's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def _hook(spec: str | None) -> Callable[..., Any] | None:
    if not spec:
        return None
    module_name, _, qualname = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]


def _call_hook(step: ir.Step, kind: str, exc: BaseException | None) -> str | None:
    """Run an on_failure/on_success hook; its own error is reported, never raised."""
    try:
        hook = _hook(step.hooks.get(kind))
        if hook is None:
            return None
        takes_arg = bool(inspect.signature(hook).parameters)
        hook(exc) if takes_arg and kind == "on_failure" else hook()
        return None
    except Exception as hook_exc:
        message = f"{kind} hook {step.hooks.get(kind)} of step '{step.name}' failed: {hook_exc!r}"
        print(f"warning: {message}", file=sys.stderr)
        return message


def stop_outputs(step: ir.Step, given: Any) -> list[tuple[ir.OutputSpec, Any]]:
    """The outputs a :class:`StopPipeline` gave, as ``(output spec, value)`` pairs.

    ``None``: none. A single-output step: the value itself (a dict whose only key is the
    output's name counts as that output's value, by name). Several outputs: a dict output
    name -> value (any subset) or the tuple the step would return.
    """
    if given is None or not step.outputs:
        return []
    names = [o.name for o in step.outputs]
    if isinstance(given, dict) and (len(names) > 1 or set(given) == {names[0]}):
        unknown = sorted(str(k) for k in given if k not in names)
        if unknown:
            raise BridgeError(
                f"Step '{step.name}' raised StopPipeline with outputs {unknown}, which it does "
                f"not declare. Its outputs: {', '.join(names)}."
            )
        return [(o, given[o.name]) for o in step.outputs if o.name in given]
    return list(zip(step.outputs, _split_outputs(step, given)))


def stop_reason(step: str, reason: str | None) -> str:
    """The run's reason when a step stopped it."""
    return f"step '{step}' stopped the pipeline: {reason or 'no reason given'}"


def record_skipped(store: Any, run_id: str, names: list[str], reason: str) -> None:
    """Record steps that were not run because a step upstream stopped the pipeline."""
    now = time.time()
    for name in names:
        store.record_step(
            run_id=run_id, step=name, status="skipped", outputs={}, error=reason,
            started_at=now, ended_at=now,
        )  # fmt: skip


def downstream_of(pipeline: ir.Pipeline, names: Any) -> list[str]:
    """The steps downstream (transitively) of ``names``, in topological order."""
    blocked = set(names)
    found = []
    for step in ir.topological_order(pipeline.steps):
        if step.name not in blocked and blocked.intersection(step.upstream):
            blocked.add(step.name)
            found.append(step.name)
    return found


def _split_outputs(step: ir.Step, value: Any) -> list[Any]:
    n = len(step.outputs)
    if n == 0:
        return []
    if n == 1:
        return [value]
    if not isinstance(value, tuple | list) or len(value) != n:
        names = ", ".join(o.name for o in step.outputs)
        raise BridgeError(
            f"Step '{step.name}' declares {n} outputs ({names}) but returned "
            f"{type(value).__name__}. Return a tuple of {n} values in that order."
        )
    return list(value)


def run_step(
    stack: Stack,
    pipeline: ir.Pipeline,
    step: ir.Step,
    *,
    run_id: str,
    run_parameters: Mapping[str, Any],
    upstream: Mapping[str, Mapping[str, OutputInfo]],
    cache: bool = True,
    attempt: int = 1,
    run_info: RunInfo | None = None,
    will_retry: bool = False,
) -> StepResult:
    """Run one step of a run and record it; never raises for a failing step function.

    Args:
        upstream: outputs of finished steps of this run: step -> output -> info.
        cache: False skips the cache lookup (``--no-cache``); the result is still cached.
        will_retry: a failure of this attempt will be retried: it is recorded ``retrying``
            (the result's status is still ``failed``).

    Returns:
        A :class:`StepResult` with status ``completed``, ``cached``, ``failed`` or
        ``stopped`` (the step raised :class:`~zenml_bridge.errors.StopPipeline`: the outputs it
        gave are stored, the step is recorded ``stopped`` with the reason and is no cache
        entry, since a re-run must decide again; no hook is called).
    """
    started = time.time()
    clock = time.perf_counter()
    store = stack.metadata
    parameters = step_parameters(step, run_parameters)
    inputs: dict[str, OutputInfo] = {}
    for ref in step.inputs:
        if ref.kind == "output":
            try:
                inputs[ref.name] = upstream[str(ref.step)][str(ref.output)]
            except KeyError:
                raise BridgeError(
                    f"Step '{step.name}' needs '{ref.step}.{ref.output}', which has not been "
                    f"produced in run {run_id}. Run step '{ref.step}' first."
                ) from None
    key = cache_key(step, parameters, inputs)
    consumed = [(info["id"], name) for name, info in inputs.items()]
    registry = _materializers()
    call: Callable[[Mapping[str, Any]], Any] | None = None
    if cache and step.cache:
        # A hit never imports the step's module (nor what it imports): checking the recorded
        # materializers and the artifacts needs metadata only. The code check guards execution.
        hit, produced = _split_cache_entry(store.lookup_cache(key))
        if hit is not None and not _materializers_match(registry, hit):
            # The step's module may register the materializer (or its version) at import:
            # import it, then check again, so that such a hit is not a wrong miss.
            imported = _import_step(store, step, run_id, key, consumed, parameters, attempt,
                                    started, clock, will_retry)  # fmt: skip
            if isinstance(imported, StepResult):
                return imported
            call = imported
        if hit is not None and _still_valid(registry, hit, stack, step):
            for kind, values in (produced.get("run_values") or {}).items():
                log_values(store, run_id, kind, values, step=step.name)  # as the producer did
            store.record_step(
                run_id=run_id,
                step=step.name,
                status="cached",
                outputs=hit,
                consumed=consumed,
                cache_key=key,
                parameters=parameters,
                metadata=produced.get("metadata"),
                metrics=produced.get("metrics"),
                attempt=attempt,
                started_at=started,
                ended_at=time.time(),
            )
            result = StepResult(
                name=step.name,
                status="cached",
                outputs=hit,
                duration_s=time.perf_counter() - clock,
                cache_key=key,
                attempt=attempt,
                metadata=produced.get("metadata") or {},
                metrics=produced.get("metrics") or {},
            )
            return _tracked(stack, run_info, step, parameters, result, None, run_id, started)
    if call is None:
        imported = _import_step(store, step, run_id, key, consumed, parameters, attempt, started,
                                clock, will_retry)  # fmt: skip
        if isinstance(imported, StepResult):
            return imported
        call = imported
    context = StepContext(
        run_id, step.name, pipeline.name, parameters, stack=stack, step_settings=step.settings
    )
    outputs: dict[str, OutputInfo] = {}
    new_artifacts: list[dict[str, Any]] = []
    pages: dict[str, dict[str, int]] = {}  # artifact id -> visualization name -> size
    tracker_failed = _track_start(
        stack, run_info, step, run_id, key, consumed, parameters, attempt, started, clock,
        will_retry,
    )  # fmt: skip
    if tracker_failed is not None:
        return tracker_failed
    try:
        values = dict(parameters)
        for name, info in inputs.items():
            loader = registry.get(info["materializer"])
            values[name] = stack.artifacts.read(info["uri"], info["sha256"], loader.load)
        integrity.verify_code(step)
        stop: StopPipeline | None = None
        try:
            with step_context(context), step_inputs(inputs), step_env(step.env):
                returned = call(values)
        except StopPipeline as exc:
            stop = exc
            given = stop_outputs(step, exc.outputs)
        else:
            given = list(zip(step.outputs, _split_outputs(step, returned)))
        from zenml_bridge.materializers.builtin import reuse_checked_text

        for spec, value in given:
            integrity.check_output_type(step, spec.name, value)
            art = artifact_id(run_id, step.name, spec.name)
            with reuse_checked_text():  # no user code between the check and the save
                materializer = registry.select(
                    value,
                    allow_pickle=step.allow_pickle,
                    explicit=spec.materializer,
                    what=f"output '{spec.name}' of step '{step.name}'",
                )
                uri, sha, size = stack.artifacts.write(
                    pipeline.name,
                    run_id,
                    step.name,
                    spec.name,
                    functools.partial(_save, materializer, value, pages.setdefault(art, {})),
                )
            version = str(materializer.version)
            value_type = f"{type(value).__module__}.{type(value).__qualname__}"
            outputs[spec.name] = {
                "id": art,
                "uri": uri,
                "sha256": sha,
                "materializer": materializer.name,
                "version": version,
                "type": value_type,
                "size": size,
                # what a later cache hit verifies cheaply (names, sizes, stat signature)
                **stack.artifacts.stamp(uri),
            }
            new_artifacts.append(
                {
                    "artifact_id": art,
                    "run_id": run_id,
                    "step": step.name,
                    "output": spec.name,
                    "uri": uri,
                    "content_sha256": sha,
                    "materializer": materializer.name,
                    "materializer_version": version,
                    "type_name": value_type,
                    "size": size,
                    "created_at": time.time(),
                }
            )
    except (Exception, SystemExit) as exc:
        # SystemExit is a failure of the step (sys.exit() in user code), never the end of the
        # runner or entrypoint; KeyboardInterrupt still stops everything.
        text = user_traceback(exc)
        hook_error = _call_hook_in(context, step, "on_failure", exc)
        metadata = dict(context.metadata)
        if hook_error:
            metadata["hook_error"] = hook_error
        result = _record_failure(
            store, step, run_id, key, consumed, parameters, attempt, started, clock, exc, text,
            metadata=metadata, metrics=context.metrics, will_retry=will_retry,
        )  # fmt: skip
        _track_end_quietly(stack, run_info, step, parameters, result)
        return result
    if stop is None:
        hook_error = _call_hook_in(context, step, "on_success", None)
        if hook_error:
            context.metadata["hook_error"] = hook_error
    # A stopped step (StopPipeline) keeps the outputs it gave but is no cache entry: a later
    # run executes the gate again. No hook is called for it.
    status = "completed" if stop is None else "stopped"
    store.record_step(
        run_id=run_id,
        step=step.name,
        status=status,
        outputs=outputs,
        new_artifacts=new_artifacts,
        consumed=consumed,
        cache_key=key,
        write_cache=step.cache and stop is None,
        cache_outputs=_cache_entry(outputs, context),
        parameters=parameters,
        metadata=context.metadata,
        metrics=context.metrics,
        error=stop.reason if stop is not None else None,
        attempt=attempt,
        started_at=started,
        ended_at=time.time(),
    )
    _record_pages(store, pages)
    result = StepResult(
        name=step.name,
        status=status,
        outputs=outputs,
        duration_s=time.perf_counter() - clock,
        cache_key=key,
        attempt=attempt,
        reason=stop.reason if stop is not None else None,
        metadata=as_recorded(context.metadata),
        metrics=dict(context.metrics),
    )
    return _tracked(stack, run_info, step, parameters, result, context, run_id, started)


def _tracked(
    stack: Stack,
    run_info: RunInfo | None,
    step: ir.Step,
    parameters: Mapping[str, Any],
    result: StepResult,
    context: StepContext | None,
    run_id: str,
    started: float,
) -> StepResult:
    """Tell the tracker; when it fails (on_error: fail) the recorded step becomes failed.

    Never raises: the tracker's error becomes the step's error (not the user's code's)."""
    try:
        _track_end(stack, run_info, step, parameters, result, context)
    except Exception as exc:
        if not isinstance(exc, BridgeError):  # Tracker.call wraps errors; be safe anyway
            exc = BridgeError(f"The experiment tracker failed at the end of step '{step.name}'"
                              f": {exc!r}")  # fmt: skip
        stack.metadata.record_step(
            replace_completed=True,
            run_id=run_id,
            step=step.name,
            status="failed",
            outputs=result.outputs,
            cache_key=result.cache_key,
            parameters=parameters,
            metadata=context.metadata if context else None,
            metrics=context.metrics if context else None,
            error=str(exc),
            attempt=result.attempt,
            started_at=started,
            ended_at=time.time(),
        )
        return dataclasses.replace(result, status="failed", error=exc, traceback=str(exc))
    return result


def _record_pages(store: Any, pages: Mapping[str, Mapping[str, int]]) -> None:
    """Record the visualizations of the step's new artifacts (after the step's record)."""
    if not any(pages.values()):
        return
    from zenml_bridge.stores import visualizations

    for art, names in pages.items():
        visualizations.record(store, art, names)


def _save(materializer: Any, value: Any, pages: dict[str, int], folder: str, fs: Any) -> None:
    from zenml_bridge.materializers import visualizations

    try:
        materializer.save(value, folder, fs)
        # Before the store hashes the folder: the reports are part of the artifact's content.
        pages.update(visualizations.write(materializer, value, folder, fs))
    except OSError as exc:  # a full disk is the user's to fix: a message, not a traceback
        where = f"an artifact into {folder.rpartition('/')[0] or folder}"
        error = disk_full_error(exc, where, "ZENML_BRIDGE_ARTIFACT_ROOT")
        if error is None:
            raise
        raise error from None


#: Key of a cache entry's outputs JSON that holds what the producing run recorded besides its
#: outputs (output names are identifiers, so it never collides with one).
PRODUCED = "@produced"


def _cache_entry(outputs: Mapping[str, OutputInfo], context: StepContext) -> Mapping[str, Any]:
    """The outputs JSON of a cache entry: the outputs, and the producer's metrics/metadata.

    ``outputs`` itself when there is nothing else: the store then encodes it once for the step
    record and the cache entry."""
    if not (context.metrics or context.metadata or context.run_values):
        return outputs
    entry: dict[str, Any] = dict(outputs)
    entry[PRODUCED] = {"metrics": dict(context.metrics), "metadata": dict(context.metadata)}
    if context.run_values:
        entry[PRODUCED]["run_values"] = context.run_values
    return entry


def _split_cache_entry(
    entry: Mapping[str, Any] | None,
) -> tuple[dict[str, OutputInfo] | None, Mapping[str, Any]]:
    if entry is None:
        return None, {}
    if PRODUCED not in entry:
        return entry, {}  # type: ignore[return-value]  # a fresh dict from the store
    outputs = {name: info for name, info in entry.items() if name != PRODUCED}
    return outputs, entry[PRODUCED]


def _import_step(
    store: Any,
    step: ir.Step,
    run_id: str,
    key: str,
    consumed: list[tuple[str, str]],
    parameters: Mapping[str, Any],
    attempt: int,
    started: float,
    clock: float,
    will_retry: bool,
) -> Callable[[Mapping[str, Any]], Any] | StepResult:
    """The step's caller (importing its module runs the materializer registrations it makes),
    or the recorded failure when the module cannot be imported."""
    try:
        return load_callable(step.source)
    except (Exception, SystemExit) as exc:
        # SystemExit too: a module calling sys.exit() on import must not pass for success.
        text = str(exc) if isinstance(exc, BridgeError) else user_traceback(exc)
        return _record_failure(
            store, step, run_id, key, consumed, parameters, attempt, started, clock, exc, text,
            will_retry=will_retry,
        )  # fmt: skip


def _materializers_match(registry: Any, hit: Mapping[str, OutputInfo]) -> bool:
    """Every recorded output materializer is known here with the recorded version."""
    try:
        return all(registry.version_of(o["materializer"]) == o["version"] for o in hit.values())
    except BridgeError:
        return False


def _still_valid(registry: Any, hit: Mapping[str, OutputInfo], stack: Stack, step: ir.Step) -> bool:
    """A cache hit counts only while every output's materializer has the recorded version
    and every cached artifact is intact (cheaply verified: see ``integrity.verify_hit``)."""
    try:
        if not all(registry.version_of(o["materializer"]) == o["version"] for o in hit.values()):
            return False
    except BridgeError:
        return False  # its materializer is gone: run the step again
    return integrity.verify_hit(stack, step, hit)


def _record_failure(
    store: Any,
    step: ir.Step,
    run_id: str,
    key: str | None,
    consumed: list[tuple[str, str]],
    parameters: Mapping[str, Any],
    attempt: int,
    started: float,
    clock: float,
    exc: BaseException,
    text: str,
    *,
    metadata: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    will_retry: bool = False,
) -> StepResult:
    """Record a failed step (its function raised, or it could not even be imported), as
    ``retrying`` when another attempt follows. A completed record of a concurrent attempt is
    kept (the store never overwrites it with a failure)."""
    store.record_step(
        run_id=run_id,
        step=step.name,
        status="retrying" if will_retry else "failed",
        outputs={},
        consumed=consumed,
        cache_key=key,
        parameters=parameters,
        metadata=metadata,
        metrics=metrics,
        error=text,
        attempt=attempt,
        started_at=started,
        ended_at=time.time(),
    )
    return StepResult(
        name=step.name,
        status="failed",
        duration_s=time.perf_counter() - clock,
        cache_key=key,
        attempt=attempt,
        error=exc,
        traceback=text,
        metadata=as_recorded(metadata or {}),
        metrics=dict(metrics or {}),
    )


def _call_hook_in(
    context: StepContext, step: ir.Step, kind: str, exc: BaseException | None
) -> str | None:
    if kind not in step.hooks:
        return None
    with step_context(context):
        return _call_hook(step, kind, exc)


def _step_info(
    step: ir.Step, parameters: Mapping[str, Any], result: StepResult | None = None
) -> StepInfo:
    return StepInfo(
        name=step.name,
        parameters=parameters,
        cached=result is not None and result.status == "cached",
        duration_s=result.duration_s if result else None,
        outputs={k: (v["uri"], v["sha256"]) for k, v in (result.outputs if result else {}).items()},
        settings=step.settings,
    )


def _track_end(
    stack: Stack,
    run_info: RunInfo | None,
    step: ir.Step,
    parameters: Mapping[str, Any],
    result: StepResult,
    context: StepContext | None,
) -> None:
    tracker = stack.tracker
    if tracker is None or run_info is None:
        return
    info = _step_info(step, parameters, result)
    if context is not None and context.metrics:
        tracker.call("log_metrics", run_info, info, dict(context.metrics))
    if context is not None and context.metadata:
        tracker.call("log_metadata", run_info, info, dict(context.metadata))
    if context is not None and context.run_values and hasattr(tracker.tracker, "log_run_values"):
        values = context.run_values
        metrics, metadata = dict(values.get("metric", {})), dict(values.get("metadata", {}))
        tracker.call("log_run_values", run_info, info, metrics, metadata)
    tracker.call("on_step_end", run_info, info, result.status)


def _track_start(
    stack: Stack,
    run_info: RunInfo | None,
    step: ir.Step,
    run_id: str,
    key: str,
    consumed: list[tuple[str, str]],
    parameters: Mapping[str, Any],
    attempt: int,
    started: float,
    clock: float,
    will_retry: bool,
) -> StepResult | None:
    """Tell the tracker the step starts, outside the block that guards the user's code: a
    tracker outage is recorded as the tracker's error (no ``on_failure`` hook, retries still
    apply), never as the step function's failure. None when all went well."""
    if stack.tracker is None or run_info is None:
        return None
    try:
        stack.tracker.call("on_step_start", run_info, _step_info(step, parameters))
    except Exception as exc:
        text = str(exc) if isinstance(exc, BridgeError) else user_traceback(exc)
        return _record_failure(
            stack.metadata, step, run_id, key, consumed, parameters, attempt, started, clock,
            exc, text, will_retry=will_retry,
        )  # fmt: skip
    return None


def _track_end_quietly(
    stack: Stack,
    run_info: RunInfo | None,
    step: ir.Step,
    parameters: Mapping[str, Any],
    result: StepResult,
) -> None:
    """The end-of-step tracker call after a failure: its own error is only a warning (the
    step's failure is already recorded and is what the caller must see)."""
    try:
        _track_end(stack, run_info, step, parameters, result, None)
    except Exception as exc:
        print(f"warning: experiment tracker at the end of step '{step.name}': {exc}",
              file=sys.stderr)  # fmt: skip


def run_step_in_child(
    stack: Stack,
    pipeline: ir.Pipeline,
    step: ir.Step,
    *,
    timeout_s: float | None,
    run_id: str,
    run_parameters: Mapping[str, Any],
    attempt: int = 1,
    will_retry: bool = False,
    **options: Any,
) -> StepResult:
    """:func:`run_step` in a forked child process (see :mod:`zenml_bridge.runtime.isolation`).

    The child records the step as in-process; this process records it failed when the child
    timed out (killed) or ended without a result (``os._exit``, a crash). A BridgeError the
    step raised in the child is raised here again.
    """
    from zenml_bridge.runtime import isolation

    skipped_before = len(stack.tracker.skipped) if stack.tracker is not None else 0

    def work() -> dict[str, Any]:
        result = run_step(
            stack, pipeline, step, run_id=run_id, run_parameters=run_parameters,
            attempt=attempt, will_retry=will_retry, **options,
        )  # fmt: skip
        skipped = stack.tracker.skipped[skipped_before:] if stack.tracker is not None else []
        return {
            "status": result.status,
            "outputs": dict(result.outputs),
            "duration_s": result.duration_s,
            "cache_key": result.cache_key,
            "attempt": result.attempt,
            "traceback": result.traceback,
            "bridge_error": isinstance(result.error, BridgeError),
            "reason": result.reason,
            "skipped": list(skipped),
            "metadata": dict(result.metadata),
            "metrics": dict(result.metrics),
        }

    started = time.time()
    clock = time.perf_counter()
    try:
        summary = isolation.run_in_child(
            work,
            timeout_s=timeout_s,
            what=f"Step '{step.name}'",
            after_fork=stack.metadata.after_fork,
        )
    except isolation.ChildFailed as exc:
        parameters = step_parameters(step, run_parameters)
        return _record_failure(
            stack.metadata, step, run_id, None, [], parameters, attempt, started, clock, exc,
            str(exc), will_retry=will_retry,
        )  # fmt: skip
    except isolation.RemoteError as exc:
        raise RuntimeError(f"{exc}\n{exc.trace}") from None
    if stack.tracker is not None and summary["skipped"]:
        stack.tracker.skipped.extend(summary["skipped"])
    error: BaseException | None = None
    if summary["status"] == "failed":
        text = summary["traceback"] or "the step failed"
        error = BridgeError(text) if summary["bridge_error"] else ChildStepError(text)
    return StepResult(
        name=step.name,
        status=summary["status"],
        outputs=summary["outputs"],
        duration_s=summary["duration_s"],
        cache_key=summary["cache_key"],
        attempt=summary["attempt"],
        error=error,
        traceback=summary["traceback"],
        reason=summary.get("reason"),
        metadata=summary.get("metadata") or {},
        metrics=summary.get("metrics") or {},
    )


class ChildStepError(Exception):
    """The exception a step raised in its child process (its traceback is the message)."""
