"""Overhead the MLflow tracker adds per step, beside the same pipeline run untracked.

Runs a 10-step chain (each step passes a 1,000-int list on and logs one metric) in this
process with the cache off, interleaving: untracked, tracked on a sqlite:/// store, tracked on
a real `mlflow server` on 127.0.0.1. Prints medians of warm runs and the per-step overhead
(tracked minus untracked, divided by the number of steps), plus the one-time cost of the
first tracked run (import mlflow, open the store) and a fully cached re-run.

    python integrations/mlflow/benchmarks/bench_mlflow.py [--repeat 7] [--no-server]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from zenml_bridge import get_step_context, pipeline, step
from zenml_bridge.config import Settings
from zenml_bridge.runtime import run_pipeline

STEPS = 10


@step
def first(n: int = 1000) -> list[int]:
    return list(range(n))


@step
def inc(values: list[int]) -> list[int]:
    get_step_context().log_metric("first", values[0])
    return [v + 1 for v in values]


@pipeline
def chain(n: int = 1000) -> None:
    values = first(n=n)
    for _ in range(STEPS - 1):
        values = inc(values)


def settings(home: Path, tracker: dict[str, Any] | None) -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    return Settings(
        metadata_url=f"sqlite:///{home / 'metadata.db'}",
        artifact_root=str(home / "artifacts"),
        experiment_tracker=tracker,
        home=home,
    )


def timed(config: Settings, cache: bool = False) -> float:
    started = time.perf_counter()
    run_pipeline(chain, {}, settings=config, cache=cache)
    return time.perf_counter() - started


def start_server(folder: Path, template: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    shutil.copyfile(template, folder / "server.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("mlflow server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="warm runs per mode (median)")
    parser.add_argument("--no-server", action="store_true", help="skip the mlflow server mode")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
    proc = None
    try:
        modes: dict[str, Settings] = {"untracked": settings(root / "plain", None)}
        timed(modes["untracked"])  # warm the runtime before anything is measured

        # One-time cost: the first tracked run imports mlflow and migrates a new database.
        started = time.perf_counter()
        import mlflow  # noqa: F401

        import_s = time.perf_counter() - started
        sqlite_db = root / "sqlite" / "mlflow.db"
        modes["sqlite"] = settings(root / "sqlite", {"flavor": "mlflow"})
        first_sqlite = timed(modes["sqlite"])
        template = root / "template.db"  # a migrated database for the server (WAL-safe copy)
        with sqlite3.connect(sqlite_db) as src, sqlite3.connect(template) as dst:
            src.backup(dst)
        if not args.no_server:
            (root / "server").mkdir()
            proc, url = start_server(root / "server", template)
            modes["server"] = settings(root / "srv", {"flavor": "mlflow", "tracking_uri": url})
            first_server = timed(modes["server"])

        times: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(args.repeat):
            for name, config in modes.items():
                times[name].append(timed(config))
        cached = {
            name: statistics.median(timed(c, cache=True) for _ in range(3))
            for name, c in modes.items()
        }

        base = statistics.median(times["untracked"])
        print(
            f"MLflow tracker overhead: {STEPS}-step chain, in-process, cache off, "
            f"median of {args.repeat} warm runs (load average {os.getloadavg()[0]:.1f})"
        )
        print(
            f"{'mode':<10} {'run (ms)':>10} {'per step (ms)':>14} {'overhead/step (ms)':>19} "
            f"{'cached re-run (ms)':>19}"
        )
        for name in modes:
            run_s = statistics.median(times[name])
            overhead = (run_s - base) / STEPS * 1000 if name != "untracked" else 0.0
            print(
                f"{name:<10} {run_s * 1000:>10.1f} {run_s / STEPS * 1000:>14.2f} "
                f"{overhead:>19.2f} {cached[name] * 1000:>19.1f}"
            )
        print(
            f"one-time: import mlflow {import_s:.2f} s; first tracked run on a new sqlite "
            f"database {first_sqlite:.2f} s (schema migration included)"
            + ("" if args.no_server else f"; first run on the server {first_server:.2f} s")
        )
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
