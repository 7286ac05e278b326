"""``python -m zenml_bridge.entrypoint run-step``: run ONE step of a stored pipeline IR.

This is the only way a backend (Airflow task, Kubeflow container) runs a step::

    python -m zenml_bridge.entrypoint run-step --ir URI --ir-sha256 HEX --step NAME --run-id ID
        [--params-json JSON] [--kfp-executor-input JSON]
        [--code-archive URI --code-archive-sha256 HEX] [--attempt N] [--new-attempt]
        [--components URI --components-sha256 HEX]

Stores come from ``ZENML_BRIDGE_METADATA_URL`` / ``ZENML_BRIDGE_ARTIFACT_ROOT`` (or the project
config); the stack components from the config published at compile time (``--components``, hash
checked), else from the worker's project config. Inputs are resolved from the metadata store
records of the same run id. The command is idempotent per (run id, step): a step already
completed in that run exits 0 at once. The step runs in a forked child (its timeout enforced, an
exit without result noticed); the step is recorded ``running`` with a heartbeat while it runs. A
failure while ``--attempt N`` is at most the step's retries is recorded ``retrying`` (the
orchestrator retries); on the last attempt the step and the run are ``failed``. The process that
finishes the last step marks the run completed. A step that raises ``StopPipeline`` is recorded
``stopped`` (with the outputs it gave), the steps downstream of it ``skipped`` and the run
``stopped``; the process exits with ``STOP_EXIT_CODE`` (99, Airflow's ``skip_on_exit_code``).
SIGTERM/SIGINT are recorded (step failed with the signal as reason) and then re-raised. Exit
codes: 0 success, 1 the step failed, 2 a user error (message printed, no traceback), 99 the step
stopped the pipeline, 128 + N after signal N.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

from zenml_bridge.errors import STOP_EXIT_CODE, BridgeError, did_you_mean
from zenml_bridge.redact import redact_text

#: Set by backends so runs show where they ran (``airflow``, ``kubeflow``).
ENV_BACKEND = "ZENML_BRIDGE_BACKEND"
DONE = ("completed", "cached")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zenml_bridge.entrypoint",
        description="Run one step of a stored pipeline IR against the configured stores.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run-step", help="run one step of a run")
    run.add_argument("--ir", required=True, help="URI or path of the pipeline IR JSON")
    run.add_argument("--ir-sha256", required=True, help="expected sha256 of the IR")
    run.add_argument("--step", required=True, help="step name")
    run.add_argument("--run-id", required=True, help="run id shared by all steps of the run")
    run.add_argument("--params-json", default="{}", help="pipeline parameters as a JSON object")
    run.add_argument("--kfp-executor-input", default=None, help="KFP executor input (JSON)")
    run.add_argument("--code-archive", default=None, help="URI of the code archive to import")
    run.add_argument("--code-archive-sha256", default=None, help="sha256 of the code archive")
    run.add_argument(
        "--components", default=None, help="URI of the stack component config published at compile"
    )
    run.add_argument("--components-sha256", default=None, help="sha256 of the component config")
    run.add_argument("--no-cache", action="store_true", help="do not use cached results")
    # The default, spelled out: an orchestrator can always pass one of the two (Airflow's
    # no_cache param renders to either) where an argument list cannot leave one out.
    run.add_argument("--cache", dest="no_cache", action="store_false", help="use the cache")
    run.add_argument(
        "--attempt",
        type=_positive_int,
        default=None,
        help="the orchestrator's try number (1 = first); default: one more than recorded",
    )
    run.add_argument(
        "--new-attempt",
        action="store_true",
        help="re-run an existing run with a new IR (e.g. after an Airflow Clear); without it a "
        "run id that was started with another IR is refused",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, not {text!r}")
    return value


def read_ir_text(uri: str) -> str:
    """The IR document at a local path or fsspec URI."""
    from zenml_bridge.stores.artifacts import is_local_url, local_path

    if is_local_url(uri):
        path = local_path(uri)
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except OSError as exc:
            raise BridgeError(
                f"Cannot read the pipeline IR {uri} ({exc.strerror}). Compile and deploy the "
                "pipeline again, or check the path the backend passes."
            ) from None
    from zenml_bridge.stores.artifacts import _url_to_fs

    fs, path = _url_to_fs(uri)
    try:
        return str(fs.cat_file(path).decode("utf-8"))
    except FileNotFoundError:
        raise BridgeError(
            f"The pipeline IR {uri} does not exist. Compile and deploy the pipeline again."
        ) from None


def _code_archive(uri: str | None, sha256: str | None) -> None:
    if not uri:
        return
    if not sha256:
        raise BridgeError("--code-archive needs --code-archive-sha256 (the archive's sha256).")
    try:
        from zenml_bridge.runtime import code_archive  # type: ignore[attr-defined]
    except ImportError:
        raise BridgeError(
            "This zenml-bridge cannot unpack code archives (zenml_bridge.runtime.code_archive "
            "is missing). Upgrade zenml-bridge on the workers or compile with --no-code-archive."
        ) from None
    path = str(code_archive.ensure_code(uri, sha256))
    if path not in sys.path:
        sys.path.insert(0, path)


def _kfp_outputs(executor_input: str | None, result: Any, stack: Any, run_id: str) -> None:
    if not executor_input:
        return
    from zenml_bridge.runtime import kfp_io

    kfp_io.write_task_outputs(executor_input, result, stack, run_id)


def run_step_command(args: argparse.Namespace) -> int:
    """Run one step; the exit code tells the orchestrator what happened."""
    from zenml_bridge import ir
    from zenml_bridge.config import load_settings, parse_json_value
    from zenml_bridge.runtime.liveness import HEARTBEAT, maybe_sweep
    from zenml_bridge.runtime.signals import Interrupted, Terminated, handle_signals, reraise
    from zenml_bridge.runtime.stack import open_stack

    overrides = parse_json_value(args.params_json or "{}", "--params-json value")
    if not isinstance(overrides, dict):
        raise BridgeError("--params-json must be a JSON object of pipeline parameters.")
    _code_archive(args.code_archive, args.code_archive_sha256)
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    ir_text = read_ir_text(args.ir)
    pipeline = ir.validate(ir.loads(ir_text, expected_sha256=args.ir_sha256))  # before stores
    try:
        step = pipeline.step(args.step)
    except KeyError:
        raise BridgeError(
            f"Pipeline '{pipeline.name}' has no step '{args.step}'."
            + did_you_mean(args.step, pipeline.step_names)
            + f" Its steps: {', '.join(pipeline.step_names)}."
        ) from None
    received: dict[str, Any] = {}
    if args.kfp_executor_input:
        # KFP passes this step's parameters, typed, in its executor input (a JSON object built
        # from placeholders would break on quotes in string values).
        from zenml_bridge.runtime import kfp_io

        parameters, received = kfp_io.run_parameters(
            args.kfp_executor_input, pipeline, step, overrides
        )
    else:
        parameters = ir.check_run_parameters(pipeline, overrides)
    settings = load_settings()
    if args.components:
        from zenml_bridge.runtime import published_components

        published = published_components.read(args.components, args.components_sha256)
        settings = published_components.apply(settings, published)
    _say_where(settings)
    stack = open_stack(settings)
    store = stack.metadata
    backend = "kubeflow" if args.kfp_executor_input else os.environ.get(ENV_BACKEND, "entrypoint")
    maybe_sweep(store)
    store.begin_run(
        run_id=args.run_id,
        pipeline=pipeline.name,
        ir_sha256=args.ir_sha256,
        ir_json=lambda: ir_text,
        parameters=parameters,
        code_archive_sha256=args.code_archive_sha256,
        backend=backend,
        new_attempt=args.new_attempt,
    )
    if args.kfp_executor_input:
        kfp_io.merge_run_parameters(store, args.run_id, received)
    run_row = store.run_state(args.run_id) or {}
    if run_row.get("status") == "cancelled":
        raise BridgeError(
            f"Run {args.run_id} was cancelled ({run_row.get('reason') or 'no reason given'}); "
            f"step '{step.name}' is not run. Start a new run to run the pipeline again."
        )
    states = store.step_runs(args.run_id)
    mine = states.get(step.name)
    if mine is not None and rerun_requested(args, mine):
        _reset_for_rerun(args, store, step.name, mine, parameters)
        mine = None
    if (
        mine is not None
        and mine["status"] in ("completed", "cached")
        and mine.get("ir_sha256") in (None, args.ir_sha256)
    ):
        print(f"step '{step.name}' of run {args.run_id} is already {mine['status']}")
        store.complete_run_if_done(args.run_id, len(pipeline.steps))
        _kfp_outputs(args.kfp_executor_input, _result_of(step.name, mine), stack, args.run_id)
        return 0
    attempt = args.attempt or (int(mine["attempt"]) + 1 if mine is not None else 1)
    # The orchestrator retries while attempts remain (Airflow: retries = max_retries).
    will_retry = attempt <= step.retry.max_retries
    if run_row.get("status") == "failed":
        store.reopen_run(args.run_id)  # a new attempt after the run failed (retry, Clear)
    elif run_row.get("status") == "stopped" and args.attempt and mine is not None:
        # A new try of a step of a stopped run (an Airflow Clear of the gate or of the steps
        # it skipped): the run is running again until its steps complete or it stops again.
        store.update_run(args.run_id, status="running", ended_at=None, reason=None)
    elif run_row.get("status") == "completed" and args.new_attempt:
        # The run is re-run with a new IR: it is running again until its steps complete.
        store.update_run(args.run_id, status="running", ended_at=None, reason=None)
    marked = store.mark_step_running(
        run_id=args.run_id, step=step.name, attempt=attempt, parameters=parameters
    )
    if marked["status"] in ("completed", "cached"):  # another attempt just completed it
        print(f"step '{step.name}' of run {args.run_id} is already {marked['status']}")
        return 0
    started = time.time()
    HEARTBEAT.add(store, args.run_id, step.name)
    try:
        with handle_signals():
            try:
                upstream, run_info = _prepare(
                    args, pipeline, step, parameters, stack, states, backend
                )
                result = _execute_step(
                    stack,
                    pipeline,
                    step,
                    run_id=args.run_id,
                    run_parameters=parameters,
                    upstream=upstream,
                    cache=not args.no_cache,
                    attempt=attempt,
                    run_info=run_info,
                    will_retry=will_retry,
                )
            except Terminated as exc:
                # Airflow's execution_timeout, "Mark failed" and a pod deletion send SIGTERM;
                # an orchestrator retries a timed-out task while attempts remain.
                reason = (
                    f"terminated by {exc.name}: the orchestrator's timeout, 'Mark failed' or "
                    "pod deletion"
                    if exc.signum == signal.SIGTERM
                    else f"interrupted by {exc.name}"
                )
                run_state = "cancelled" if isinstance(exc, Interrupted) else "failed"
                _record_failed(
                    store, args.run_id, step.name, parameters, attempt, started, reason,
                    will_retry=will_retry and run_state == "failed", run_status=run_state,
                )  # fmt: skip
                print(f"step '{step.name}' {reason}", file=sys.stderr)
                reraise(exc)
                return exc.exit_code  # pragma: no cover - reraise ends the process
            except (Exception, SystemExit) as exc:
                # The run was begun: never leave it "running" because the step could not start.
                text = str(exc) if isinstance(exc, BridgeError) else traceback.format_exc()
                _record_failed(
                    store, args.run_id, step.name, parameters, attempt, started, text,
                    will_retry=will_retry,
                )  # fmt: skip
                if isinstance(exc, SystemExit):  # its code may be 0: the step still failed
                    print(f"step '{step.name}' failed:\n{redact_text(text)}", file=sys.stderr)
                    return 1
                raise
    finally:
        HEARTBEAT.remove(store, args.run_id, step.name)
    if result.status == "failed":
        what = "failed (the orchestrator retries it)" if will_retry else "failed"
        print(f"step '{step.name}' {what}:\n{redact_text(result.traceback)}", file=sys.stderr)
        if not will_retry:
            store.finish_run(args.run_id, "failed", reason=f"step '{step.name}' failed")
            if stack.tracker is not None and run_info is not None:
                _quietly(stack.tracker.call, "on_run_end", run_info, "failed")
        if isinstance(result.error, BridgeError):
            raise result.error
        return 1
    if result.status == "stopped":
        return _stopped(stack, pipeline, step, args.run_id, result, run_info)
    print(f"step '{step.name}' of run {args.run_id} {result.status} ({result.duration_s:.2f}s)")
    done = store.complete_run_if_done(args.run_id, len(pipeline.steps))
    if done and stack.tracker is not None and run_info is not None:
        _quietly(stack.tracker.call, "on_run_end", run_info, "completed")
    _kfp_outputs(args.kfp_executor_input, result, stack, args.run_id)
    return 0


def _stopped(stack: Any, pipeline: Any, step: Any, run_id: str, result: Any, run_info: Any) -> int:
    """The step raised StopPipeline: its downstream steps skipped, the run stopped, exit 99.

    The orchestrator never starts the downstream tasks (Airflow skips them; Kubeflow ends the
    run at the failed task), so they are recorded ``skipped`` here."""
    from zenml_bridge.runtime.step_runner import downstream_of, record_skipped, stop_reason

    reason = stop_reason(step.name, result.reason)
    skipped = downstream_of(pipeline, [step.name])
    record_skipped(stack.metadata, run_id, skipped, f"skipped: {reason}")
    stack.metadata.finish_run(run_id, "stopped", reason=reason[:2000])
    if stack.tracker is not None and run_info is not None:
        _quietly(stack.tracker.call, "on_run_end", run_info, "stopped")
    # On stderr, so the task log shows it (Kubeflow marks the task failed: the reason is there).
    print(f"step '{step.name}' of run {run_id} {redact_text(reason)}", file=sys.stderr)
    print(f"exiting with {STOP_EXIT_CODE}: the orchestrator skips the steps downstream",
          file=sys.stderr)  # fmt: skip
    return STOP_EXIT_CODE


def _say_where(settings: Any) -> None:
    """Every step says where it records (task logs are read one at a time; the default
    location is announced only once, ever, when it is created). On stdout: stderr is for
    what went wrong."""
    from zenml_bridge.redact import redact_url

    print(
        f"zenml-bridge: recording into {redact_url(settings.metadata_url)}, artifacts under "
        f"{redact_url(settings.artifact_root)}",
        flush=True,
    )


def rerun_requested(args: argparse.Namespace, mine: Any) -> bool:
    """True for a try after the one that finished the step: the orchestrator was told to run
    it again (Airflow's Clear starts a new try), so the step runs, not the cache."""
    if args.attempt is None or mine["status"] not in ("completed", "cached"):
        return False
    return bool(args.attempt > int(mine["attempt"]))


def _reset_for_rerun(
    args: argparse.Namespace, store: Any, step: str, mine: Any, parameters: dict[str, Any]
) -> None:
    """Make a finished step runnable again: its record back to running (the completed record
    is otherwise kept), the run reopened, no cache look-up."""
    print(f"step '{step}' was {mine['status']} (try {mine['attempt']}); try {args.attempt} runs it")
    now = time.time()
    store.record_step(
        run_id=args.run_id, step=step, status="running", outputs={}, parameters=parameters,
        attempt=args.attempt, started_at=now, ended_at=now, replace_completed=True,
    )  # fmt: skip
    store.update_run(args.run_id, status="running", ended_at=None, reason=None)
    args.no_cache = True


def _execute_step(stack: Any, pipeline: Any, step: Any, **options: Any) -> Any:
    """The step in a forked child (timeout enforced, an exit without result noticed), or
    in-process where fork is missing or ``ZENML_BRIDGE_ISOLATE=0``."""
    from zenml_bridge.runtime import isolation
    from zenml_bridge.runtime.step_runner import run_step, run_step_in_child

    if isolation.entrypoint_isolates():
        return run_step_in_child(stack, pipeline, step, timeout_s=step.timeout_s, **options)
    return run_step(stack, pipeline, step, **options)


def _quietly(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except Exception as exc:
        print(f"warning: {exc}", file=sys.stderr)


def _record_failed(
    store: Any,
    run_id: str,
    step: str,
    parameters: dict[str, Any],
    attempt: int,
    started: float,
    error: str,
    *,
    will_retry: bool = False,
    run_status: str = "failed",
) -> None:
    """Record the step failed (``retrying`` when the orchestrator retries it) and, on its last
    attempt, the run ``run_status``; a failing store must not hide ``error``. A completed
    record of another attempt is kept, and then the run is not failed."""
    try:
        current = store.record_step(
            run_id=run_id,
            step=step,
            status="retrying" if will_retry else "failed",
            outputs={},
            parameters=parameters,
            error=error,
            attempt=attempt,
            started_at=started,
            ended_at=time.time(),
        )
        if current["status"] in ("completed", "cached") or will_retry:
            return
        store.finish_run(
            run_id, run_status, reason=f"step '{step}': {error.splitlines()[0]}"[:2000]
        )
    except Exception as exc:
        print(f"warning: could not record the failure of step '{step}': {exc}", file=sys.stderr)


def _prepare(
    args: argparse.Namespace,
    pipeline: Any,
    step: Any,
    parameters: dict[str, Any],
    stack: Any,
    states: dict[str, Any],
    backend: str,
) -> tuple[dict[str, Any], Any]:
    """The step's upstream outputs and the tracker's run info (``on_run_start`` called)."""
    from zenml_bridge.runtime.tracking import RunInfo

    store = stack.metadata
    kfp_upstream: dict[str, Any] = {}
    waiting = [n for n in step.upstream if (states.get(n) or {}).get("status") not in DONE]
    if args.kfp_executor_input and waiting:
        from zenml_bridge.runtime import kfp_io

        # The upstream outputs are in its input artifacts' metadata (for upstream tasks KFP
        # served from its own cache), checked against the metadata store.
        kfp_upstream = kfp_io.read_upstream(args.kfp_executor_input, step, store)
    upstream: dict[str, Any] = {}
    for name in step.upstream:
        state = states.get(name)
        missing = state is None or state["status"] not in ("completed", "cached")
        if (missing and args.kfp_executor_input) and (
            name in kfp_upstream or not any(r.step == name for r in step.inputs)
        ):
            # KFP ran the upstream task before this one; it may have come from KFP's cache.
            upstream[name] = kfp_upstream.get(name, {})
            continue
        if state is None or state["status"] not in ("completed", "cached"):
            status = state["status"] if state else "not run"
            raise BridgeError(
                f"Step '{step.name}' of run {args.run_id} needs step '{name}', which is "
                f"{status} in that run. Run '{name}' first (the orchestrator's dependencies)."
            )
        upstream[name] = state["outputs"]
    run_info = None
    if stack.tracker is not None:
        run_row = store.get_run(args.run_id) or {}
        run_info = RunInfo(
            run_id=args.run_id,
            pipeline=pipeline.name,
            parameters=parameters,
            ir_sha256=args.ir_sha256,
            backend=backend,
            git_sha=run_row.get("git_sha"),
            links=run_row.get("links") or {},
        )
        links = stack.tracker.call("on_run_start", run_info) or {}
        if links and dict(links) != dict(run_info.links):
            merged = {**run_info.links, **links}
            store.update_run(args.run_id, links=merged)
            run_info = RunInfo(**{**_fields(run_info), "links": merged})
    return upstream, run_info


def _fields(value: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def _result_of(name: str, row: dict[str, Any]) -> Any:
    from zenml_bridge.runtime.step_runner import StepResult

    return StepResult(
        name=name,
        status=row["status"],
        outputs=row["outputs"],
        duration_s=row["ended_at"] - row["started_at"],
        cache_key=row.get("cache_key"),
        attempt=row.get("attempt", 1),
        metadata=row.get("metadata") or {},
        metrics=row.get("metrics") or {},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run; BridgeError -> message and exit 2."""
    try:
        args = build_parser().parse_args(argv)
        return run_step_command(args)
    except BridgeError as exc:
        print(f"Error: {redact_text(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # SIGINT, recorded (see run_step_command)
        print("Interrupted.", file=sys.stderr)
        return 130
