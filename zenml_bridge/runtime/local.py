"""The local runner: runs a pipeline's steps in topological order, in this process.

Independent steps may run at the same time with ``parallel=N`` (threads), except that a step
with ``env`` always runs alone: environment variables are process-wide. Every step goes
through :func:`zenml_bridge.runtime.step_runner.run_step`, the same function the entrypoint
uses on Airflow and Kubeflow.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from zenml_bridge import ir
from zenml_bridge.config import RunConfig, Settings, load_settings
from zenml_bridge.errors import BridgeError, did_you_mean
from zenml_bridge.runtime import isolation
from zenml_bridge.runtime.gitinfo import GitInfo, git_info
from zenml_bridge.runtime.liveness import HEARTBEAT, maybe_sweep
from zenml_bridge.runtime.records import ArtifactRecord, RunRecord, StepRecord, _named
from zenml_bridge.runtime.signals import Interrupted, Terminated, handle_signals, reraise
from zenml_bridge.runtime.stack import Stack, open_stack
from zenml_bridge.runtime.step_runner import (
    StepResult,
    downstream_of,
    record_skipped,
    run_step,
    run_step_in_child,
    stop_reason,
)
from zenml_bridge.runtime.tracking import RunInfo
from zenml_bridge.settings import validate_steps

RUN_OPTIONS = (
    "cache",
    "parallel",
    "run_id",
    "config",
    "stack",
    "settings",
    "progress",
    "raise_on_failure",
    "strict",
)
#: id(IR) -> (IR, its sha256) for the last few IRs run (a long-lived process runs many).
_PREPARED: OrderedDict[int, tuple[ir.Pipeline, str]] = OrderedDict()
_PREPARED_MAX = 16
_PREPARED_LOCK = threading.Lock()
_PRINT_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class StepEvent:
    """A progress event: ``running``, ``cached``, ``completed``, ``failed``, ``retrying``,
    ``stopped`` (the step raised StopPipeline; ``reason`` says why) or ``skipped``."""

    step: str
    status: str
    duration_s: float | None = None
    attempt: int = 1
    traceback: str | None = None
    error: BaseException | None = None
    reason: str | None = None


@dataclass
class _Live:
    """The steps of a run that are running now (recorded failed if the run is interrupted)."""

    run_id: str
    running: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def start(self, step: str, attempt: int) -> None:
        with self.lock:
            self.running[step] = (attempt, time.time())

    def end(self, step: str) -> None:
        with self.lock:
            self.running.pop(step, None)

    @property
    def cancelled(self) -> bool:
        """``zenml-bridge runs cancel`` (seen by the heartbeat): start no further step."""
        return self.run_id in HEARTBEAT.gone


class RunFailed(Exception):
    """A pipeline run failed because a step failed; ``.run`` is its run record."""

    def __init__(self, message: str, run: RunRecord) -> None:
        super().__init__(message)
        self.run = run


def _no_progress(event: StepEvent) -> None:
    """The progress callback when none is given."""


def new_run_id(pipeline: str) -> str:
    return f"{pipeline}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _identity(pipeline_ir: ir.Pipeline) -> str:
    key = id(pipeline_ir)
    with _PREPARED_LOCK:  # runs may start from several threads
        known = _PREPARED.get(key)
        if known is not None and known[0] is pipeline_ir:
            _PREPARED.move_to_end(key)
            return known[1]
    sha = ir.sha256(pipeline_ir)
    with _PREPARED_LOCK:
        _PREPARED[key] = (pipeline_ir, sha)
        while len(_PREPARED) > _PREPARED_MAX:
            _PREPARED.popitem(last=False)
    return sha


def apply_step_settings(
    pipeline_ir: ir.Pipeline, steps: Mapping[str, Mapping[str, Any]], where: str
) -> ir.Pipeline:
    """The IR with per-step settings of a run config applied (cache, retries, ...)."""
    if not steps:
        return pipeline_ir
    names = pipeline_ir.step_names
    for name in steps:
        if name not in names:
            raise BridgeError(
                f"The {where} sets step '{name}', which pipeline '{pipeline_ir.name}' does not "
                "have." + did_you_mean(name, names) + f" Its steps: {', '.join(names)}."
            )
    new_steps = []
    for step in pipeline_ir.steps:
        settings = steps.get(step.name) or {}
        retry = step.retry
        if "retries" in settings:
            retry = dataclasses.replace(retry, max_retries=int(settings["retries"]))
        if "retry_delay" in settings:
            retry = dataclasses.replace(retry, delay_s=float(settings["retry_delay"]))
        if "retry_backoff" in settings:
            retry = dataclasses.replace(retry, backoff_factor=float(settings["retry_backoff"]))
        new_steps.append(
            dataclasses.replace(
                step,
                retry=retry,
                cache=bool(settings.get("cache", step.cache)),
                cache_salt=str(settings.get("cache_salt", step.cache_salt)),
            )
        )
    return dataclasses.replace(pipeline_ir, steps=tuple(new_steps))


def run_pipeline(
    pipeline: Any, parameters: Mapping[str, Any] | None = None, **options: Any
) -> RunRecord:
    """Run a pipeline on the active stack (the embedded SQLite + local folder by default).

    Args:
        pipeline: a ``@pipeline`` (``zenml_bridge.dsl.Pipeline``) or a pipeline IR.
        parameters: pipeline parameters; keys named like an option below (and not like a
            parameter of the pipeline) are taken as that option.
        cache: False ignores cached results (``--no-cache``); default True.
        parallel: how many independent steps may run at once (threads); default 1.
        run_id: the run's id (default: ``<pipeline>-<date>-<time>-<random>``).
        config: a :class:`zenml_bridge.config.RunConfig` (parameters, step settings, stores).
        stack: name of a stack of the project config.
        settings: explicit :class:`zenml_bridge.config.Settings` (stores), else from config.
        progress: called with a :class:`StepEvent` as steps start and finish.
        raise_on_failure: raise :class:`RunFailed` (or the step's BridgeError) when a step
            fails (default True); False returns the failed run record.
        strict: a settings block no installed integration declares is an error, not a
            warning (``--strict``).

    Returns:
        The :class:`RunRecord`: ``run.steps["train"].outputs["model"].load()``.

    Example:
        >>> run = run_pipeline(training, {"rows": 500})   # doctest: +SKIP
        >>> run.status
        'completed'
    """
    pipeline_ir: ir.Pipeline = pipeline if isinstance(pipeline, ir.Pipeline) else pipeline.to_ir()
    values = dict(parameters or {})
    known = {p.name for p in pipeline_ir.parameters}
    for key in RUN_OPTIONS:
        if key in values and key not in known:
            options.setdefault(key, values.pop(key))
    unknown = sorted(set(options) - set(RUN_OPTIONS))
    if unknown:
        raise BridgeError(
            f"run_pipeline() got the unknown option '{unknown[0]}'."
            + did_you_mean(unknown[0], RUN_OPTIONS)
            + f" Options: {', '.join(RUN_OPTIONS)}."
        )
    config: RunConfig = options.get("config") or RunConfig()
    values = {**config.parameters, **values}
    pipeline_ir = apply_step_settings(pipeline_ir, config.steps, f"run config {config.path}")
    for warning in validate_steps(
        ((step.name, step.settings) for step in pipeline_ir.steps),
        strict=bool(options.get("strict")),
    ):
        print(f"warning: {warning}", file=sys.stderr)
    run_parameters = ir.check_run_parameters(pipeline_ir, values)
    settings: Settings = options.get("settings") or load_settings(config, options.get("stack"))
    stack = open_stack(settings)
    cache = options.get("cache")
    cache = config.cache if cache is None else cache
    parallel = int(options.get("parallel") or config.parallel or 1)
    progress: Callable[[StepEvent], None] = options.get("progress") or _no_progress
    run_id = str(options.get("run_id") or new_run_id(pipeline_ir.name))
    func = getattr(pipeline, "func", None)
    folder = os.path.dirname(func.__code__.co_filename) if func is not None else os.getcwd()
    return _execute(
        stack,
        pipeline_ir,
        run_id=run_id,
        run_parameters=run_parameters,
        cache=cache is not False,
        parallel=max(1, parallel),
        progress=progress,
        git=git_info(folder),
        raise_on_failure=options.get("raise_on_failure", True),
    )


def _execute(
    stack: Stack,
    pipeline_ir: ir.Pipeline,
    *,
    run_id: str,
    run_parameters: dict[str, Any],
    cache: bool,
    parallel: int,
    progress: Callable[[StepEvent], None],
    git: GitInfo,
    raise_on_failure: bool,
) -> RunRecord:
    store = stack.metadata
    ir_sha = _identity(pipeline_ir)
    maybe_sweep(store)
    created = store.begin_run(
        run_id=run_id,
        pipeline=pipeline_ir.name,
        ir_sha256=ir_sha,
        ir_json=lambda: ir.dumps(pipeline_ir),
        parameters=run_parameters,
        git_sha=git.sha,
    )
    if not created:
        # Its artifacts are immutable: running again under its id would overwrite them.
        raise BridgeError(
            f"A run with the id '{run_id}' already exists in the metadata store; its records "
            "and artifacts are kept as they are. Choose a new --run-id (or leave it out for a "
            "generated one)."
        )
    run_info = None
    links: dict[str, str] = {}
    results: dict[str, StepResult] = {}
    live = _Live(run_id)
    status = "failed"
    reason: str | None = None
    interrupted: Terminated | None = None
    HEARTBEAT.add(store, run_id)
    try:
        with handle_signals():
            try:
                if stack.tracker is not None:
                    stack.tracker.skipped.clear()
                    run_info = RunInfo(
                        run_id=run_id,
                        pipeline=pipeline_ir.name,
                        parameters=run_parameters,
                        ir_sha256=ir_sha,
                        git_sha=git.sha,
                    )
                    links = dict(stack.tracker.call("on_run_start", run_info) or {})
                    if links:
                        store.update_run(run_id, links=links)
                        run_info = dataclasses.replace(run_info, links=links)
                runner = _run_sequential if parallel == 1 else _run_parallel
                runner(
                    stack, pipeline_ir, run_id, run_parameters, cache, parallel, progress,
                    run_info, results, live,
                )  # fmt: skip
                stopped = [r for r in results.values() if r.status == "stopped"]
                if stopped:
                    _skip_downstream(store, pipeline_ir, run_id, stopped, results, progress)
                failed = any(r.status == "failed" for r in results.values())
                complete = not failed and len(results) == len(pipeline_ir.steps)
                status = "completed" if complete else "failed"
                if stopped and not failed:
                    status, reason = "stopped", stop_reason(stopped[0].name, stopped[0].reason)
                if live.cancelled:
                    status, reason = "cancelled", "cancelled by `zenml-bridge runs cancel`"
            except Terminated as exc:
                interrupted = exc
                status = "cancelled"
                reason = (
                    f"interrupted by {exc.name}"
                    if isinstance(exc, Interrupted)
                    else f"terminated by {exc.name}"
                )
                isolation.kill_children()
                _record_interrupted(store, live, reason)
            finally:
                if stack.tracker is not None and stack.tracker.skipped:
                    links["tracking.skipped"] = "; ".join(stack.tracker.skipped)[:2000]
                extra = {"links": links} if links else {}
                store.finish_run(run_id, status, git_dirty=git.dirty(), reason=reason, **extra)
                if stack.tracker is not None and run_info is not None:
                    try:
                        stack.tracker.call("on_run_end", run_info, status)
                    except Exception:
                        if interrupted is None:
                            raise
    finally:
        HEARTBEAT.remove(store, run_id)
    if interrupted is not None:
        reraise(interrupted)
    record = _record(
        stack, pipeline_ir, run_id, status, run_parameters, ir_sha, git, links, results
    )
    if reason is not None:
        record = dataclasses.replace(record, reason=reason)
    if status == "failed" and raise_on_failure:
        failed_result = next(r for r in results.values() if r.status == "failed")
        if isinstance(failed_result.error, BridgeError):
            raise failed_result.error
        raise RunFailed(
            f"Step '{failed_result.name}' failed in run {run_id}:\n{failed_result.traceback}",
            record,
        ) from failed_result.error
    return record


def _skip_downstream(
    store: Any,
    pipeline_ir: ir.Pipeline,
    run_id: str,
    stopped: list[StepResult],
    results: dict[str, StepResult],
    progress: Callable[[StepEvent], None],
) -> None:
    """Record the steps downstream of stopped steps ``skipped`` (they were never started)."""
    names = [n for n in downstream_of(pipeline_ir, [r.name for r in stopped]) if n not in results]
    reason = f"skipped: {stop_reason(stopped[0].name, stopped[0].reason)}"
    record_skipped(store, run_id, names, reason)
    for name in names:
        results[name] = StepResult(name=name, status="skipped", reason=reason)
        progress(StepEvent(name, "skipped", reason=reason))


def _record_interrupted(store: Any, live: _Live, reason: str) -> None:
    """Record the steps running when the signal came as failed, with the signal as reason."""
    with live.lock:
        running = dict(live.running)
    for name, (attempt, started) in running.items():
        try:
            store.record_step(
                run_id=live.run_id,
                step=name,
                status="failed",
                outputs={},
                error=reason,
                attempt=attempt,
                started_at=started,
                ended_at=time.time(),
            )
        except Exception as exc:
            print(f"warning: could not record step '{name}' {reason}: {exc}", file=sys.stderr)


def _attempts(
    stack: Stack,
    pipeline_ir: ir.Pipeline,
    step: ir.Step,
    run_id: str,
    run_parameters: Mapping[str, Any],
    upstream: Mapping[str, Mapping[str, Any]],
    cache: bool,
    progress: Callable[[StepEvent], None],
    run_info: RunInfo | None,
    live: _Live,
) -> StepResult:
    quiet = progress is _no_progress  # no events to build (two per step)
    if not quiet:
        progress(StepEvent(step.name, "running"))
    policy = step.retry
    attempt = 1
    # A step with a timeout runs in a child process, which is killed when the time is up.
    isolate = step.timeout_s is not None and isolation.can_fork()
    while True:
        will_retry = attempt <= policy.max_retries
        live.start(step.name, attempt)
        options: dict[str, Any] = dict(
            run_id=run_id,
            run_parameters=run_parameters,
            upstream=upstream,
            cache=cache,
            attempt=attempt,
            run_info=run_info,
            will_retry=will_retry,
        )
        if isolate:
            result = run_step_in_child(
                stack, pipeline_ir, step, timeout_s=step.timeout_s, **options
            )
        else:
            result = run_step(stack, pipeline_ir, step, **options)
        # Not on a signal: the step then stays "running" until it is recorded interrupted.
        live.end(step.name)
        if result.status != "failed" or not will_retry or live.cancelled:
            break
        delay = policy.delay_s * policy.backoff_factor ** (attempt - 1)
        if policy.max_delay_s is not None:
            delay = min(delay, policy.max_delay_s)
        progress(StepEvent(step.name, "retrying", result.duration_s, attempt, result.traceback))
        time.sleep(delay)
        attempt += 1
    if not quiet:
        progress(
            StepEvent(
                step.name,
                result.status,
                result.duration_s,
                attempt,
                result.traceback,
                result.error,
                result.reason,
            )  # fmt: skip
        )
    return result


def _run_sequential(
    stack: Stack,
    pipeline_ir: ir.Pipeline,
    run_id: str,
    run_parameters: Mapping[str, Any],
    cache: bool,
    parallel: int,
    progress: Callable[[StepEvent], None],
    run_info: RunInfo | None,
    results: dict[str, StepResult],
    live: _Live,
) -> None:
    upstream: dict[str, Mapping[str, Any]] = {}
    blocked: set[str] = set()  # stopped steps and those downstream: skipped, never started
    for step in ir.topological_order(pipeline_ir.steps):
        if live.cancelled:
            return
        if blocked.intersection(step.upstream):
            blocked.add(step.name)
            continue
        result = _attempts(
            stack, pipeline_ir, step, run_id, run_parameters, upstream, cache, progress,
            run_info, live,
        )  # fmt: skip
        results[step.name] = result
        if result.status == "failed":
            return
        if result.status == "stopped":
            blocked.add(step.name)
        upstream[step.name] = result.outputs


def _run_parallel(
    stack: Stack,
    pipeline_ir: ir.Pipeline,
    run_id: str,
    run_parameters: Mapping[str, Any],
    cache: bool,
    parallel: int,
    progress: Callable[[StepEvent], None],
    run_info: RunInfo | None,
    results: dict[str, StepResult],
    live: _Live,
) -> None:
    order = ir.topological_order(pipeline_ir.steps)
    position = {step.name: i for i, step in enumerate(order)}
    # Counts of upstream steps not yet finished, and who waits on whom: finding the steps that
    # became ready costs their edges, not a scan of every pending step (quadratic on a chain).
    waiting = {step.name: len(step.upstream) for step in order}
    downstream: dict[str, list[ir.Step]] = {}
    for step in order:
        for name in step.upstream:
            downstream.setdefault(name, []).append(step)
    ready = [step for step in order if not waiting[step.name]]  # in topological order
    upstream: dict[str, Mapping[str, Any]] = {}
    running: dict[Future[StepResult], str] = {}
    has_env: dict[Future[StepResult], bool] = {}
    failed = False
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="zenml-bridge")
    finished = False
    try:
        while ready or running:
            if not failed and not live.cancelled:
                submitted = []
                for step in ready:
                    if len(running) >= parallel:
                        break
                    # os.environ is process-wide: a step with env runs alone.
                    if running and any(has_env[f] for f in running):
                        break
                    if running and step.env:
                        continue
                    submitted.append(step)
                    future = pool.submit(
                        _attempts,
                        stack,
                        pipeline_ir,
                        step,
                        run_id,
                        run_parameters,
                        {name: upstream[name] for name in step.upstream},
                        cache,
                        progress,
                        run_info,
                        live,
                    )
                    running[future] = step.name
                    has_env[future] = bool(step.env)
                if submitted:
                    taken = {id(step) for step in submitted}
                    ready = [step for step in ready if id(step) not in taken]
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                has_env.pop(future, None)
                result = future.result()
                results[name] = result
                if result.status == "failed":
                    failed = True
                elif result.status == "stopped":
                    pass  # its downstream steps never become ready: they are skipped
                else:
                    upstream[name] = result.outputs
                    for down in downstream.get(name, ()):
                        waiting[down.name] -= 1
                        if not waiting[down.name]:
                            bisect.insort(ready, down, key=lambda s: position[s.name])
        finished = True
    finally:
        # Interrupted (a signal): do not wait for steps still running in threads.
        pool.shutdown(wait=finished, cancel_futures=True)


def _record(
    stack: Stack,
    pipeline_ir: ir.Pipeline,
    run_id: str,
    status: str,
    run_parameters: Mapping[str, Any],
    ir_sha: str,
    git: GitInfo,
    links: Mapping[str, str],
    results: Mapping[str, StepResult],
) -> RunRecord:
    steps = {
        name: StepRecord(
            name=name,
            status=result.status,
            duration_s=result.duration_s,
            outputs=_named(
                {
                    k: ArtifactRecord.from_info(v, stack.artifacts)
                    for k, v in result.outputs.items()
                },
                "output",
                f"Step '{name}'",
            ),
            cache_key=result.cache_key,
            error=result.traceback or result.reason,
            metadata=result.metadata,
            metrics=result.metrics,
        )
        for name, result in results.items()
    }
    return RunRecord(
        run_id=run_id,
        pipeline=pipeline_ir.name,
        status=status,
        parameters=run_parameters,
        ir_sha256=ir_sha,
        steps=_named(steps, "step", f"Run {run_id}"),
        git_sha=git.sha,
        git_dirty=git.dirty(),
        links=links,
        store=stack.metadata,
    )


def print_progress(event: StepEvent, stream: Any = None) -> None:
    """The CLI's progress lines: ``running``, ``cached``, ``done``, ``failed`` with durations."""
    with _PRINT_LOCK:
        _print_event(event, stream or sys.stdout)


def _print_event(event: StepEvent, out: Any) -> None:
    label = {"completed": "done"}.get(event.status, event.status)
    duration = f" ({event.duration_s:.2f}s)" if event.duration_s is not None else ""
    retry = f" attempt {event.attempt}" if event.status == "retrying" else ""
    why = f": {event.reason}" if event.status == "stopped" and event.reason else ""
    print(f"  {event.step:<24} {label}{retry}{duration}{why}", file=out, flush=True)
    if (
        event.status in ("failed", "retrying")
        and event.traceback
        and not isinstance(event.error, BridgeError)
    ):
        print("    " + event.traceback.rstrip().replace("\n", "\n    "), file=out, flush=True)
