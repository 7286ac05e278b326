"""``zenml-bridge run`` of the 10-step chain (W1) as a whole process, ready store.

Each sample is one ``python -m zenml_bridge run bench_steps.py:w1 --no-cache`` process on a
store that already exists (as after ``zenml-bridge init``), bytecode compiled; wall time and
CPU time (user + system, from the kernel's accounting of the child) beside ``python -c pass``
and, with ``--before PATH``, another checkout measured interleaved in the same run. CPU time
is steadier than wall time on a loaded machine. Nothing here asserts a time.

    python benchmarks/bench_cli.py [--repeat 15] [--before /path/to/main-checkout]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_local import _write_modules  # noqa: E402


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return elapsed, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--before", help="another checkout to measure interleaved")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        folder = Path(tmp)
        _write_modules(folder)
        variants = {"this checkout": REPO}
        if args.before:
            variants = {"before": Path(args.before).resolve(), **variants}
        envs = {}
        for name, checkout in variants.items():
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            stores = folder / f"stores-{len(envs)}"
            env.update(
                PYTHONPATH=os.pathsep.join(
                    p for p in (str(checkout), str(folder), os.environ.get("PYTHONPATH")) if p
                ),
                ZENML_BRIDGE_METADATA_URL=f"sqlite:///{stores / 'metadata.db'}",
                ZENML_BRIDGE_ARTIFACT_ROOT=str(stores / "artifacts"),
            )
            envs[name] = env
        run = [sys.executable, "-m", "zenml_bridge", "run", "bench_steps.py:w1", "--no-cache"]
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in [*envs, "pass"]}
        for env in envs.values():  # warm-up: the store exists, bytecode is compiled
            timed(run, env, folder)
        for _ in range(args.repeat):
            for name, env in envs.items():
                samples[name].append(timed(run, env, folder))
            samples["pass"].append(timed([sys.executable, "-c", "pass"], envs[name], folder))
    load = os.getloadavg()[0]
    print(f"`zenml-bridge run` of the 10-step chain, whole process; medians of {args.repeat}")
    print(f"{'what':40} {'wall s':>7} {'CPU s':>7}   (load average {load:.1f})")
    labels = {"pass": "python -c pass (baseline)"}
    for name, values in samples.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"{labels.get(name, 'zenml-bridge run, ' + name):40} {wall:7.3f} {cpu:7.3f}")


if __name__ == "__main__":
    main()
