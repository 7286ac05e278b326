"""A 1,000,000 x 10 float64 DataFrame through 3 steps, in-process, beside Kedro's pickle datasets.

The pipeline is make_frame -> scale (df * 2) -> summarize (a float), as W3 of bench_local.py.
Each variant runs in its own process (one warm-up run, then --runs timed runs, median), and
the variants are interleaved over --rounds rounds, so a load change hits them alike:

- ``zenml-bridge``: this checkout (fully tracked: SQLite store, content hashes, cache off);
  also with ``ZENML_BRIDGE_ARROW_COMPRESSION=lz4`` and ``=zstd``;
- ``zenml-bridge --before PATH``: another checkout (e.g. ``main``) in the same run;
- ``pickle (Kedro's PickleDataset reproduced)``: what kedro-datasets' ``PickleDataset`` does
  for each dataset, with no runner around it: ``fsspec.filesystem("file").open(path, "wb")``
  and ``pickle.dump(data, f)`` to save, ``open(path, "rb")`` and ``pickle.load(f)`` to load
  (its defaults: the ``pickle`` backend, no save or load arguments, no versioning);
- ``pickle, versioned``: the same with a new file per save and earlier ones kept (what
  ``PickleDataset(versioned=True)`` does: ``<name>.pkl/<timestamp>/<name>.pkl``), as zenml-bridge
  keeps every run's artifacts;
- ``Kedro (SequentialRunner + PickleDataset)`` with ``--kedro-python PY``: a Python that has
  ``kedro`` and ``kedro-datasets`` installed (e.g. a venv made with
  ``uv venv /tmp/kedro && uv pip install -p /tmp/kedro kedro kedro-datasets pandas``).

Memory: on a virtual machine, page-cache memory the guest has never touched costs far more to
write into than memory it has used before (measured on the development VM just after boot: 80 MB
into a new file 0.20 s, into recycled pages 0.016 s). A variant that overwrites its files (the
default pickle variant) recycles its own pages, one that keeps every version does not. Freed
pages do not stay warm either: the VM hands them back to its host after a while (free page
reporting), and the next touch is a first touch again. So that the rows compare formats rather
than the VM's memory, the script writes and deletes ``--warm-memory-mb`` of data (default 1024;
0 to skip) right before each child process, and each child deletes its files when it ends.
``--warm-memory-mb 0`` shows the other condition (each row then depends on what the VM did
before it).

Nothing here asserts a time. Run: ``python benchmarks/bench_frames.py`` (``--rows 200000``
for a quick look).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PLAIN = textwrap.dedent(
    """
    def make_frame(rows):
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(0)
        return pd.DataFrame(rng.random((rows, 10)), columns=[f"c{i}" for i in range(10)])

    def scale(df):
        return df * 2.0

    def summarize(df):
        return float(df.to_numpy().sum())
    """
)

CHILD = textwrap.dedent(
    """
    import json, os, statistics, sys, tempfile, time
    sys.path.insert(0, sys.argv[1])
    import plain
    variant, rows, runs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    folder = tempfile.mkdtemp(dir=sys.argv[1])

    if variant == "zenml-bridge":
        os.environ["ZENML_BRIDGE_METADATA_URL"] = f"sqlite:///{folder}/metadata.db"
        os.environ["ZENML_BRIDGE_ARTIFACT_ROOT"] = f"{folder}/artifacts"
        from zenml_bridge import pipeline, step

        make_frame, scale, summarize = (
            step(plain.make_frame), step(plain.scale), step(plain.summarize))

        @pipeline
        def frames(rows: int = 1000) -> None:
            summarize(scale(make_frame(rows=rows)))

        def run():
            record = frames(rows=rows, cache=False)
            assert record.status == "completed", record.status
    elif variant == "pickle":
        import pickle
        import fsspec

        fs = fsspec.filesystem("file")

        def save(name, data):  # kedro_datasets.pickle.PickleDataset.save, defaults
            with fs.open(f"{folder}/{name}.pkl", mode="wb") as f:
                pickle.dump(data, f)

        def load(name):  # PickleDataset.load
            with fs.open(f"{folder}/{name}.pkl", mode="rb") as f:
                return pickle.load(f)

        def run():
            save("a", plain.make_frame(rows))
            save("b", plain.scale(load("a")))
            plain.summarize(load("b"))
    elif variant == "pickle-versioned":
        import pickle
        import fsspec

        fs = fsspec.filesystem("file")

        def save(name, data):  # PickleDataset(versioned=True).save: a new folder per save
            path = f"{folder}/{name}.pkl/{time.time_ns()}"
            fs.makedirs(path, exist_ok=True)
            with fs.open(f"{path}/{name}.pkl", mode="wb") as f:
                pickle.dump(data, f)
            latest[name] = f"{path}/{name}.pkl"

        def load(name):
            with fs.open(latest[name], mode="rb") as f:
                return pickle.load(f)

        latest = {}

        def run():
            save("a", plain.make_frame(rows))
            save("b", plain.scale(load("a")))
            plain.summarize(load("b"))
    elif variant == "kedro":
        import logging
        logging.disable(logging.WARNING)
        from kedro.io import DataCatalog
        from kedro.pipeline import Pipeline, node
        from kedro.runner import SequentialRunner
        from kedro_datasets.pickle import PickleDataset

        nodes = Pipeline([
            node(plain.make_frame, "params:rows", "a"),
            node(plain.scale, "a", "b"),
            node(plain.summarize, "b", "c"),
        ])

        def run():
            catalog = DataCatalog({
                "a": PickleDataset(filepath=f"{folder}/a.pkl"),
                "b": PickleDataset(filepath=f"{folder}/b.pkl"),
            })
            catalog["params:rows"] = rows
            SequentialRunner().run(nodes, catalog)
    else:  # plain functions, data handed over in memory
        def run():
            plain.summarize(plain.scale(plain.make_frame(rows)))

    run()  # warm-up: imports, first-run costs
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(json.dumps([statistics.median(times), statistics.median(cpu)]))
    import shutil
    shutil.rmtree(folder)  # its pages go back to the machine for the next child
    """
)


def child(
    python: str, folder: Path, variant: str, rows: int, runs: int, env: dict[str, str]
) -> tuple[float, float]:
    """``(wall s, CPU s)``: medians of ``runs`` warm runs in one new process."""
    out = subprocess.run(
        [python, "-c", CHILD, str(folder), variant, str(rows), str(runs)],
        env=env,
        cwd=folder,  # not the checkout: PYTHONPATH chooses the code
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall, cpu = json.loads(out.strip().splitlines()[-1])
    return float(wall), float(cpu)


def warm_memory(folder: Path, megabytes: int) -> None:
    """Write and delete ``megabytes`` of data: later writes recycle pages the machine has used."""
    block = os.urandom(1 << 20)
    path = folder / "warm-memory.bin"
    with open(path, "wb") as f:
        for _ in range(megabytes):
            f.write(block)
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per process")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--before", help="another checkout to measure in the same run")
    parser.add_argument("--kedro-python", help="a Python with kedro and kedro-datasets")
    parser.add_argument(
        "--warm-memory-mb",
        type=int,
        default=1024,
        help="write and delete this much data before each child (see the docstring; 0: skip)",
    )
    args = parser.parse_args()

    base_env = dict(os.environ)
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure what users get: cached bytecode
    base_env.pop("ZENML_BRIDGE_ARROW_COMPRESSION", None)

    def env_for(checkout: Path, **extra: str) -> dict[str, str]:
        outer = os.environ.get("PYTHONPATH")
        return {
            **base_env,
            "PYTHONPATH": os.pathsep.join(p for p in (str(checkout), outer) if p),
            **extra,
        }

    variants: dict[str, tuple[str, str, dict[str, str]]] = {
        "plain functions (no storage)": (sys.executable, "plain", env_for(REPO)),
        "pickle (Kedro's PickleDataset reproduced)": (sys.executable, "pickle", env_for(REPO)),
        "pickle, versioned (a new file per save)": (
            sys.executable,
            "pickle-versioned",
            env_for(REPO),
        ),
    }
    if args.kedro_python:
        version = subprocess.run(
            [args.kedro_python, "-c", "import kedro; print(kedro.__version__)"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        variants[f"Kedro {version} (SequentialRunner + PickleDataset)"] = (
            args.kedro_python,
            "kedro",
            dict(base_env),
        )
    if args.before:
        variants["zenml-bridge --before (baseline checkout)"] = (
            sys.executable,
            "zenml-bridge",
            env_for(Path(args.before).resolve()),
        )
    variants["zenml-bridge (this checkout)"] = (sys.executable, "zenml-bridge", env_for(REPO))
    for codec in ("lz4", "zstd"):
        variants[f"zenml-bridge, ZENML_BRIDGE_ARROW_COMPRESSION={codec}"] = (
            sys.executable,
            "zenml-bridge",
            env_for(REPO, ZENML_BRIDGE_ARROW_COMPRESSION=codec),
        )

    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="bench_frames_") as tmp:
        folder = Path(tmp)
        (folder / "plain.py").write_text(PLAIN)
        names = list(variants)
        for round_no in range(args.rounds):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                python, variant, env = variants[name]
                warm_memory(folder, args.warm_memory_mb)
                results[name].append(child(python, folder, variant, args.rows, args.runs, env))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    reference = "pickle (Kedro's PickleDataset reproduced)"
    ref = statistics.median(v[0] for v in results[reference])
    ref_cpu = statistics.median(v[1] for v in results[reference])
    print(
        f"{args.rows:,} x 10 float64 through 3 steps, in-process; median of {args.rounds} "
        f"interleaved rounds (each the median of {args.runs} warm runs); load {load:.1f}. "
        "CPU = user + system seconds of the process (all threads): steadier than wall time "
        "on a loaded machine."
    )
    best_ref = min(v[0] for v in results[reference])
    print(
        "best: the fastest round (rounds that met a VM's never-touched or given-back memory are "
        "slower; see the docstring)"
    )
    print(
        f"{'variant':52} {'wall s':>7} {'x pickle':>8} {'CPU s':>6} {'x pickle':>8} "
        f"{'best s':>7} {'x pickle':>8}  wall/round"
    )
    for name, values in results.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        best = min(v[0] for v in values)
        rounds = " ".join(f"{v[0]:.3f}" for v in values)
        print(
            f"{name:52} {wall:7.3f} {wall / ref:8.2f} {cpu:6.3f} {cpu / ref_cpu:8.2f} "
            f"{best:7.3f} {best / best_ref:8.2f}  {rounds}"
        )


if __name__ == "__main__":
    main()
