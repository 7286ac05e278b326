"""Local runner benchmark: W1-W4 beside a plain-Python baseline measured in the same run.

W1  a 10-step chain passing a 1,000-int list
W2  50 independent trivial steps fanned into one (51 steps)
W3  a 1,000,000 x 10 float DataFrame through 3 steps (baseline: the same functions plus raw
    to_parquet/read_parquet of each frame handed over)
W4  a fully cached re-run of W1
C100, C1000  chains of 100 and 1,000 steps passing a 10-int list; RC100, RC1000 their cached
    re-runs
F100, F1000  100 and 1,000 independent trivial steps fanned into one; RF100, RF1000 their cached
    re-runs

For each: whole-process wall time (interpreter start included, fresh stores), in-process time
of the first run in a process and of warm runs (median; cache off except W4), per-step overhead
((warm - baseline) / steps) and peak RSS. The C/F/R workloads are measured in-process only
(whole-process columns show "-"): they are about per-step cost as a pipeline grows. Run:
``python benchmarks/bench_local.py`` (``--quick`` for fewer repeats, ``--rows N`` for a smaller
W3, ``--only W1,C1000`` for some workloads, ``--dir /dev/shm`` for stores on a tmpfs).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

STEPS = textwrap.dedent(
    """
    from zenml_bridge import pipeline, step
    import plain

    make = step(plain.make)
    inc = step(plain.inc)
    part = step(plain.part)
    combine = step(plain.combine)
    make_frame = step(plain.make_frame)
    scale = step(plain.scale)
    summarize = step(plain.summarize)

    @pipeline
    def w1(n: int = 1000) -> None:
        data = make(n=n)
        for _ in range(9):
            data = inc(data)

    @pipeline
    def w2() -> None:
        combine(*[part(i=i) for i in range(50)])

    @pipeline
    def w3(rows: int = 1_000_000) -> None:
        summarize(scale(make_frame(rows=rows)))

    def _chain(k):
        @pipeline(name=f"chain{k}")
        def chain() -> None:
            data = make(n=10)
            for _ in range(k - 1):
                data = inc(data)
        return chain

    def _fanin(k):
        @pipeline(name=f"fanin{k}")
        def fanin() -> None:
            combine(*[part(i=i) for i in range(k - 1)])
        return fanin

    c100, c1000 = _chain(100), _chain(1000)
    f100, f1000 = _fanin(100), _fanin(1000)
    """
)

PLAIN = textwrap.dedent(
    """
    def make(n: int = 1000) -> list[int]:
        return list(range(n))

    def inc(data: list[int]) -> list[int]:
        return [x + 1 for x in data]

    def part(i: int) -> int:
        return i * i

    def combine(*parts: int) -> int:
        return sum(parts)

    def make_frame(rows: int = 1_000_000) -> "pandas.DataFrame":
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(0)
        return pd.DataFrame(rng.random((rows, 10)), columns=[f"c{i}" for i in range(10)])

    def scale(df: "pandas.DataFrame") -> "pandas.DataFrame":
        return df * 2.0

    def summarize(df: "pandas.DataFrame") -> float:
        return float(df.to_numpy().sum())

    def w1():
        data = make(1000)
        for _ in range(9):
            data = inc(data)
        return data

    def w2():
        return combine(*[part(i) for i in range(50)])

    def chain(k):
        data = make(10)
        for _ in range(k - 1):
            data = inc(data)
        return data

    def fanin(k):
        return combine(*[part(i) for i in range(k - 1)])

    def w3(rows, folder):
        import pandas as pd
        df = make_frame(rows)
        df.to_parquet(f"{folder}/a.parquet")
        df = scale(pd.read_parquet(f"{folder}/a.parquet"))
        df.to_parquet(f"{folder}/b.parquet")
        return summarize(pd.read_parquet(f"{folder}/b.parquet"))
    """
)

N_STEPS = {"W1": 10, "W2": 51, "W3": 3, "W4": 10}
#: Scaling workloads (in-process only): name -> (pipeline, plain function, steps, cached).
SCALING = {
    f"{prefix}{k}": (f"{kind}{k}", plain, k, cached)
    for k in (100, 1000)
    for prefix, kind, plain, cached in (
        ("C", "c", "chain", False),
        ("F", "f", "fanin", False),
        ("RC", "c", "chain", True),
        ("RF", "f", "fanin", True),
    )
}
N_STEPS.update({name: spec[2] for name, spec in SCALING.items()})
DEFAULT = "W1,W2,W3,W4," + ",".join(SCALING)


def _write_modules(folder: Path) -> None:
    (folder / "plain.py").write_text(PLAIN)
    (folder / "bench_steps.py").write_text(STEPS)


def _env(folder: Path, stores: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        # an outer PYTHONPATH (e.g. another checkout to compare with) stays after the folder
        PYTHONPATH=os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p),
        ZENML_BRIDGE_METADATA_URL=f"sqlite:///{stores / 'metadata.db'}",
        ZENML_BRIDGE_ARTIFACT_ROOT=str(stores / "artifacts"),
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure what users get: cached bytecode
    return env


def _timed(code: str, env: dict[str, str], cwd: Path) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (KiB) and CPU seconds (user + system) of ``python -c code``."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"benchmark child failed: {code}")
    return elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def whole_process(folder: Path, workload: str, rows: int, repeat: int) -> dict[str, float]:
    calls = {
        "W1": ("bench_steps.w1()", "plain.w1()"),
        "W2": ("bench_steps.w2()", "plain.w2()"),
        "W3": (f"bench_steps.w3(rows={rows})", f"plain.w3({rows}, {str(folder)!r})"),
        "W4": ("bench_steps.w1()", "plain.w1()"),
    }
    ours, base = calls[workload]
    init = (
        "import os; from zenml_bridge.stores.metadata import MetadataStore; "
        "MetadataStore(os.environ['ZENML_BRIDGE_METADATA_URL'])"
    )
    times, rss, cpu, fresh, base_times = [], [], [], [], []
    for i in range(repeat):
        stores = folder / f"stores-{workload}-{i}"
        env = _env(folder, stores)
        if workload == "W4":  # the cached re-run: the store already holds the run
            _timed(f"import bench_steps; {ours}", env, folder)
        else:  # a ready store, as after `zenml-bridge init` (not timed)
            _timed(init, env, folder)
        elapsed, peak, cpu_s = _timed(f"import bench_steps; {ours}", env, folder)
        times.append(elapsed)
        rss.append(peak)
        cpu.append(cpu_s)
        fresh_env = _env(folder, folder / f"fresh-{workload}-{i}")
        fresh.append(_timed(f"import bench_steps; {ours}", fresh_env, folder)[0])
        base_times.append(_timed(f"import plain; {base}", env, folder)[0])
    return {
        "process_s": statistics.median(times),
        "process_fresh_s": statistics.median(fresh),
        "process_cpu_s": statistics.median(cpu),
        "process_base_s": statistics.median(base_times),
        "process_rss_mib": max(rss) / 1024,
    }


def in_process(workload: str, rows: int, warm: int, folder: str) -> dict[str, float]:
    """Runs inside a child process (``--child``): first run, warm runs, baseline."""
    import resource

    sys.path.insert(0, folder)
    import bench_steps
    import plain

    run = {"W1": bench_steps.w1, "W2": bench_steps.w2, "W3": bench_steps.w3, "W4": bench_steps.w1}
    kwargs = {"rows": rows} if workload == "W3" else {}
    baselines = {
        "W1": plain.w1,
        "W2": plain.w2,
        "W3": lambda: plain.w3(rows, folder),
        "W4": plain.w1,
    }
    cached = workload == "W4"
    if workload in SCALING:
        name, plain_name, k, cached = SCALING[workload]
        run[workload] = getattr(bench_steps, name)
        baselines[workload] = functools.partial(getattr(plain, plain_name), k)
    baseline = baselines[workload]
    start = time.perf_counter()
    run[workload](**kwargs)
    first = time.perf_counter() - start
    cache = cached
    times = []
    for _ in range(warm):
        start = time.perf_counter()
        record = run[workload](cache=cache, **kwargs)
        times.append(time.perf_counter() - start)
        assert record.status == "completed"
    if cache:
        assert {s.status for s in record.steps.values()} == {"cached"}
    base = []
    for _ in range(warm):
        start = time.perf_counter()
        baseline()
        base.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    warm_s, base_s = statistics.median(times), statistics.median(base)
    return {
        "first_s": first,
        "warm_s": warm_s,
        "base_s": base_s,
        "per_step_ms": (warm_s - base_s) / N_STEPS[workload] * 1000,
        "rss_mib": peak,
    }


def topo_ms(k: int, repeat: int = 5) -> float:
    """Median ms of ``ir.topological_order`` on a k-step chain (given in order)."""
    from zenml_bridge import ir

    steps = [
        ir.Step(
            name=f"s{i}",
            source=f"m:s{i}",
            source_file="m.py",
            source_line=1,
            code_hash="0" * 64,
            after=(f"s{i - 1}",) if i else (),
        )
        for i in range(k)
    ]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        ir.topological_order(steps)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="W3 rows")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", default=DEFAULT)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument(
        "--dir",
        help="where the stores go (default: the system's temp folder); e.g. /dev/shm (a tmpfs) "
        "separates what the code costs from what the disk's file system costs",
    )
    args = parser.parse_args()
    warm = 3 if args.quick else 15
    if args.child:
        warm_runs = min(warm, 5) if args.child == "W3" or args.child in SCALING else warm
        print(json.dumps(in_process(args.child, args.rows, warm_runs, str(args.folder))))
        return
    repeat = 3 if args.quick else 7
    with tempfile.TemporaryDirectory(prefix="zb-bench-", dir=args.dir) as tmp:
        folder = Path(tmp)
        _write_modules(folder)
        rows = []
        for workload in args.only.split(","):
            wp = (
                whole_process(folder, workload, args.rows, 3 if workload == "W3" else repeat)
                if workload not in SCALING
                else {}
            )
            env = _env(folder, folder / f"inproc-{workload}")
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    workload,
                    "--rows",
                    str(args.rows),
                    "--folder",
                    str(folder),
                    *(["--quick"] if args.quick else []),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rows.append((workload, wp, json.loads(out)))
    load = os.getloadavg()[0]
    where = args.dir or tempfile.gettempdir()
    print(f"zenml-bridge local runner, SQLite + local folder in {where}; load average {load:.1f}")
    print(
        f"{'':6} {'steps':>5} {'process':>8} {'cpu':>6} {'fresh':>7} {'baseline':>8} "
        f"{'first':>8} {'warm':>8} {'baseline':>8} {'per-step':>8} {'RSS proc':>8} {'RSS in':>7}"
    )
    print(
        f"{'':6} {'':>5} {'wall s':>8} {'s':>6} {'wall s':>7} {'wall s':>8} {'inproc s':>8} "
        f"{'inproc s':>8} {'inproc s':>8} {'ms':>8} {'MiB':>8} {'MiB':>7}"
    )
    for workload, wp, ip in rows:
        if wp:
            process = (
                f"{wp['process_s']:>8.3f} {wp['process_cpu_s']:>6.3f} "
                f"{wp['process_fresh_s']:>7.3f} {wp['process_base_s']:>8.3f}"
            )
            rss = f"{wp['process_rss_mib']:>8.1f}"
        else:
            process, rss = f"{'-':>8} {'-':>6} {'-':>7} {'-':>8}", f"{'-':>8}"
        print(
            f"{workload:6} {N_STEPS[workload]:>5} {process} "
            f"{ip['first_s']:>8.4f} {ip['warm_s']:>8.4f} {ip['base_s']:>8.4f} "
            f"{ip['per_step_ms']:>8.3f} {rss} {ip['rss_mib']:>7.1f}"
        )
    sizes = (10, 100, 1000)
    topo = ", ".join(f"{k}: {topo_ms(k, 1 if k >= 1000 else 5):.2f} ms" for k in sizes)
    print(f"ir.topological_order on a chain of {topo}")
    print(
        "process: a fresh interpreter on a ready store (as after `zenml-bridge init`), median "
        "wall and cpu (user+system); fresh: the same on a new, empty store (schema creation "
        "included); W4 process = re-run on a store that holds the run. warm: median of "
        "repeated runs in one process (cache off, W4 cache on). Wall grows with the load."
    )


if __name__ == "__main__":
    main()
