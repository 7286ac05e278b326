"""Airflow backend figures, each beside a baseline measured in the same run.

1. Compile time of 10, 100 and 1,000-step pipelines (checks, render, parse-back self-check,
   atomic write), beside the ``ir`` target writing the same pipeline as JSON.
2. Parse time of a generated 100-task DAG file in Airflow's DagBag (after the imports any DAG
   file needs), beside Airflow's own import cost and beside a hand-written 100-task
   BashOperator DAG of the same graph (plain Airflow), each in a fresh process.

Usage: ``python benchmarks/bench_airflow.py [--airflow-python PATH]`` (default: this interpreter,
which then needs apache-airflow, e.g. ``.tox/airflow3/bin/python``). Prints figures; asserts
nothing about time.
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
import time
from functools import partial
from pathlib import Path

from zenml_bridge import ir
from zenml_bridge.compilers.airflow import AirflowCompiler
from zenml_bridge.compilers.base import CompileOptions
from zenml_bridge.compilers.ir import IRCompiler


def synthetic(n: int) -> ir.Pipeline:
    """``n`` steps: each reads its predecessor and the step at half its index (a wide DAG)."""
    steps = []
    for i in range(n):
        upstream = sorted({i - 1, i // 2} - {i}) if i else []
        steps.append(
            ir.Step(
                name=f"step_{i}",
                source=f"bench.steps:step_{i}",
                source_file="bench/steps.py",
                source_line=i + 1,
                code_hash=f"{i:064x}",
                description=f"Step number {i}, with 'quotes' and {{{{ braces }}}}.",
                inputs=tuple(
                    ir.InputRef.of_output(f"x{u}", f"step_{u}", "output") for u in upstream
                ),
                outputs=(ir.OutputSpec(name="out"),),
                retry=ir.RetryPolicy(max_retries=i % 3, delay_s=5.0),
                timeout_s=600.0 if i % 2 else None,
                env={"STEP": str(i)},
            )
        )
    return ir.Pipeline(
        name=f"bench_{n}",
        source="bench.steps:pipeline",
        source_file="bench/steps.py",
        source_line=1,
        parameters=(ir.Parameter(name="rows", type="int", default=100),),
        schedule="@daily",
        steps=tuple(steps),
    )


def options(pipeline: ir.Pipeline, out: Path) -> CompileOptions:
    sha = ir.sha256(pipeline)
    return CompileOptions(out=out, ir_uri=f"s3://bucket/.zenml_bridge/ir/{sha}.json", ir_sha256=sha)


def best_of(func: object, repeat: int) -> tuple[float, float]:
    """(min, median) seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def bench_compile(folder: Path) -> None:
    print("compile (seconds; min / median)")
    print(f"  {'steps':>6}  {'airflow target':>22}  {'ir target (baseline)':>22}")
    for n in (10, 100, 1000):
        pipeline = synthetic(n)
        repeat = 20 if n < 1000 else 5
        airflow_options = options(pipeline, folder)
        ir_options = options(pipeline, folder / "x.json")
        airflow = best_of(partial(AirflowCompiler().compile, pipeline, airflow_options), repeat)
        baseline = best_of(partial(IRCompiler().compile, pipeline, ir_options), repeat)
        print(
            f"  {n:>6}  {airflow[0]:>10.4f} / {airflow[1]:<9.4f}  "
            f"{baseline[0]:>10.4f} / {baseline[1]:<9.4f}"
        )


HAND_WRITTEN = """
import datetime
from airflow import DAG
try:
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:
    from airflow.operators.bash import BashOperator

with DAG(dag_id="hand_written", schedule="@daily", catchup=False,
         start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
         params={"rows": 100}) as dag:
    tasks = {}
    for i in range(N):
        tasks[i] = BashOperator(
            task_id=f"step_{i}", retries=i % 3, retry_delay=datetime.timedelta(seconds=5),
            bash_command="python -m my_steps --step step_%d --run-id {{ run_id }}" % i,
            env={"STEP": str(i)}, append_env=True,
        )
        for u in sorted({i - 1, i // 2} - {i}) if i else []:
            tasks[u] >> tasks[i]
"""

PROBE = textwrap.dedent(
    """
    import json, statistics, sys, time
    t0 = time.perf_counter()
    try:
        from airflow.sdk import DAG
    except ImportError:
        from airflow import DAG
    try:
        from airflow.providers.standard.operators.bash import BashOperator
    except ImportError:
        from airflow.operators.bash import BashOperator
    try:
        from airflow.dag_processing.dagbag import DagBag
        make = lambda folder: DagBag(dag_folder=folder, safe_mode=False)
    except ImportError:
        from airflow.models.dagbag import DagBag
        make = lambda folder: DagBag(dag_folder=folder, include_examples=False, safe_mode=False)
    t1 = time.perf_counter()
    times = []
    for _ in range(7):
        started = time.perf_counter()
        bag = make(sys.argv[1])
        times.append(time.perf_counter() - started)
        assert not bag.import_errors, bag.import_errors
        assert len(next(iter(bag.dags.values())).tasks) == 100
    result = {
        "import_s": t1 - t0,
        "first_s": times[0],
        "median_s": statistics.median(times[1:]),
    }
    print("BENCH " + json.dumps(result))
    """
)


def bench_parse(folder: Path, python: str) -> None:
    pipeline = synthetic(100)
    generated = folder / "generated"
    AirflowCompiler().compile(pipeline, options(pipeline, generated))
    hand = folder / "hand"
    hand.mkdir()
    (hand / "hand_written.py").write_text(HAND_WRITTEN.replace("N)", "100)"), encoding="utf-8")
    env = {**os.environ, "AIRFLOW_HOME": str(folder / "home"), "PYTHONWARNINGS": "ignore"}
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    data = {}
    for key, folder_of in (("generated", generated), ("hand_written", hand)):
        # A fresh process per file, so neither pays the other's one-time costs.
        result = subprocess.run(
            [python, "-c", PROBE, str(folder_of)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(x for x in result.stdout.splitlines() if x.startswith("BENCH "))
        data[key] = json.loads(line[len("BENCH ") :])
    version = subprocess.run(
        [python, "-c", "import airflow; print(airflow.__version__)"],
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    size = (generated / "zenml_bridge__bench_100.py").stat().st_size
    print(f"\nDagBag parse of a 100-task DAG file, Airflow {version} (seconds, fresh process each)")
    for key in ("generated", "hand_written"):
        label = f"zenml-bridge file ({size // 1024} KiB)" if key == "generated" else "hand-written"
        print(
            f"  {label:<28} Airflow import {data[key]['import_s']:.3f}   first parse "
            f"{data[key]['first_s']:.3f}   re-parse median {data[key]['median_s']:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow-python", default=sys.executable)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_compile(Path(tmp) / "compile")
        bench_parse(Path(tmp) / "parse", args.airflow_python)


if __name__ == "__main__":
    main()
