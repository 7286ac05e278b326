"""``zenml-bridge run SRC [-p k=v] [--config run.yaml] [--no-cache] [--parallel N]``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from zenml_bridge.cli.common import add_parameter_option, parse_parameters


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a pipeline locally, tracked and cached",
        description="Run SRC (package.module:pipeline or path/file.py:pipeline) on the active "
        "stack (the embedded SQLite + local folder by default).",
    )
    parser.add_argument(
        "src", nargs="?", metavar="SRC", help="the pipeline (may come from --config instead)"
    )
    add_parameter_option(parser)
    parser.add_argument("--config", help="a run config YAML (pipeline, parameters, steps, stores)")
    parser.add_argument("--no-cache", action="store_true", help="run every step, ignore the cache")
    parser.add_argument("--parallel", type=int, default=None, metavar="N", help="steps at once")
    parser.add_argument("--run-id", help="the run's id (default: generated)")
    parser.add_argument("--stack", help="a stack of the project config (default: active one)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="treat warnings (e.g. a settings block no integration declares) as errors",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from zenml_bridge.cli.source import load_pipeline
    from zenml_bridge.config import RunConfig, load_run_config, load_settings
    from zenml_bridge.errors import BridgeError
    from zenml_bridge.runtime.local import StepEvent, print_progress, run_pipeline

    config = load_run_config(args.config) if args.config else RunConfig()
    src = args.src or config.pipeline
    if not src:
        raise BridgeError(
            "Name the pipeline to run: zenml-bridge run path/file.py:pipeline (or set "
            "'pipeline:' in the --config file)."
        )
    if args.parallel is not None and args.parallel < 1:
        raise BridgeError(f"--parallel must be 1 or more, not {args.parallel}.")
    pipeline = load_pipeline(src)
    pipeline_ir = pipeline.to_ir()
    settings = load_settings(config, args.stack)
    print(
        f"Running pipeline '{pipeline_ir.name}' ({len(pipeline_ir.steps)} steps); "
        f"metadata: {_short(settings.metadata_url)}, artifacts: {_short(settings.artifact_root)}",
        flush=True,
    )
    errors: list[BaseException] = []

    def progress(event: StepEvent) -> None:
        print_progress(_redacted(event))
        if event.status == "failed" and event.error is not None:
            errors.append(event.error)

    started = time.perf_counter()
    try:
        run = run_pipeline(
            pipeline,
            {**config.parameters, **parse_parameters(args.params)},
            cache=False if args.no_cache else None,
            parallel=args.parallel,
            run_id=args.run_id,
            config=config,
            settings=settings,
            progress=progress,
            raise_on_failure=False,
            strict=args.strict,
        )
    except KeyboardInterrupt:
        # Ctrl-C: the run is recorded cancelled already. Exit now: the interpreter would
        # otherwise wait for steps still running in --parallel threads before exiting.
        print("Interrupted.", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)
    elapsed = time.perf_counter() - started
    counts: dict[str, int] = {}
    for step in run.steps.values():
        counts[step.status] = counts.get(step.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"Run {run.run_id} {run.status} in {elapsed:.2f}s ({summary}).")
    if run.status == "stopped":
        # Stopped on purpose by a gate step (StopPipeline): reported, not an error (exit 0).
        from zenml_bridge.redact import redact_text

        print(f"Stopped: {redact_text(run.reason or 'a step raised StopPipeline')}")
        print(f"Show it: zenml-bridge runs show {run.run_id}")
        return 0
    if run.status != "completed":
        for step in run.failed_steps:
            print(f"Step '{step.name}' failed. Details: zenml-bridge runs show {run.run_id}")
        for error in errors:
            if isinstance(error, BridgeError):
                raise error  # a user error (e.g. no materializer for a value): exit 2
        return 1
    print(f"Show it: zenml-bridge runs show {run.run_id}")
    return 0


def _short(url: str) -> str:
    from zenml_bridge.redact import redact_url

    return redact_url(url)


def _redacted(event: Any) -> Any:
    """The event with URLs in its traceback redacted (a store error may name a URL)."""
    import dataclasses

    from zenml_bridge.redact import redact_text

    if not event.traceback:
        return event
    return dataclasses.replace(event, traceback=redact_text(event.traceback))
