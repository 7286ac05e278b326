"""Compile time and YAML size of the Kubeflow backend for 10, 100 and 1,000 steps.

Baseline, measured in the same run: the kfp SDK compiling the same shape (a chain of container
components, each reading the previous one's output artifact and one pipeline parameter).
Target: 1,000 steps in under 1 s. Our YAML per step holds more than the SDK's here: the run
uuid input, the step's own inputs with defaults, the step_metrics artifact, the step output
exposed at the root, both generations of resource fields and the IR / code-archive arguments.

    python benchmarks/bench_kubeflow.py          # needs the `kubeflow` extra (kfp)
"""

# No `from __future__ import annotations`: kfp reads the component annotations at runtime.
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from zenml_bridge import ir
from zenml_bridge.compilers.base import CompileOptions
from zenml_bridge.compilers.kubeflow import KubeflowCompiler, dump_yaml, validate

SIZES = (10, 100, 1000)


def chain(n: int) -> ir.Pipeline:
    """``s0 -> s1 -> ... -> s{n-1}``, each step with a parameter, retries and resources."""
    steps = []
    for i in range(n):
        inputs = [ir.InputRef.of_parameter("rows", "rows", "int")]
        if i:
            inputs.append(ir.InputRef.of_output("values", f"s{i - 1}", "output"))
        steps.append(
            ir.Step(
                name=f"s{i}",
                source=f"bench:s{i}",
                source_file="bench.py",
                source_line=i + 1,
                code_hash=f"{i:064x}",
                inputs=tuple(inputs),
                outputs=(ir.OutputSpec(name="output", type="list[int]"),),
                retry=ir.RetryPolicy(max_retries=2),
                resources=ir.Resources(cpu="500m", memory="1Gi"),
                timeout_s=600,
            )
        )
    return ir.Pipeline(
        name="bench",
        source="bench:bench",
        source_file="bench.py",
        source_line=1,
        parameters=(ir.Parameter(name="rows", type="int", default=100),),
        steps=tuple(steps),
    )


def time_it(func: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kfp_sdk_compile(n: int, out: Path) -> None:
    from kfp import compiler, dsl

    @dsl.container_component
    def step(rows: int, values: dsl.Input[dsl.Artifact], output: dsl.Output[dsl.Artifact]):  # type: ignore[no-untyped-def]
        return dsl.ContainerSpec(
            image="img", command=["python", "-m", "x"], args=[rows, values.uri, output.path]
        )

    @dsl.container_component
    def first(rows: int, output: dsl.Output[dsl.Artifact]):  # type: ignore[no-untyped-def]
        return dsl.ContainerSpec(
            image="img", command=["python", "-m", "x"], args=[rows, output.path]
        )

    @dsl.pipeline(name="bench")
    def bench(rows: int = 100) -> None:
        task = first(rows=rows).set_retry(2).set_cpu_limit("500m").set_memory_limit("1Gi")
        for _ in range(n - 1):
            task = step(rows=rows, values=task.outputs["output"]).set_retry(2)
            task.set_cpu_limit("500m").set_memory_limit("1Gi")

    compiler.Compiler().compile(bench, str(out))


def row(n: int, tmp: Path) -> str:
    """One line of the table: our compile (and its parts) beside the kfp SDK's, for n steps."""
    compiler = KubeflowCompiler()
    pipeline = chain(n)
    out = tmp / f"bench{n}.yaml"
    options = CompileOptions(
        out=out,
        image="ghcr.io/example/zenml-bridge:0.1.0",
        ir_uri="s3://bucket/ir/x.json",
        code_archive_uri="s3://bucket/code/y.tar.gz",
        code_archive_sha256="0" * 64,
        ir_sha256="0" * 64,  # the CLI passes the published IR's hash
    )
    repeat = 5 if n < 1000 else 3
    compiler.compile(pipeline, options)  # warm imports (kfp, protobuf)
    total = time_it(lambda: compiler.compile(pipeline, options), repeat)
    spec, platform = compiler.build(pipeline, options)
    build = time_it(lambda: compiler.build(pipeline, options), repeat)
    check = time_it(lambda: validate(spec, platform), repeat)
    dump = time_it(lambda: dump_yaml(pipeline, spec, platform), repeat)
    size = out.stat().st_size / n
    sdk_out = tmp / f"sdk{n}.yaml"
    kfp_sdk_compile(n, sdk_out)  # warm
    sdk = time_it(lambda: kfp_sdk_compile(n, sdk_out), 1 if n >= 1000 else 3)
    sdk_size = sdk_out.stat().st_size / n
    return (
        f"{n:>6} {total:>9.3f} {build:>7.3f} {check:>9.3f} {dump:>7.3f} "
        f"{size:>7.0f} {sdk:>10.3f} {sdk_size:>10.0f}"
    )


def main() -> None:
    print(
        f"{'steps':>6} {'ours s':>9} {'build':>7} {'validate':>9} {'dump':>7} "
        f"{'B/step':>7} {'kfp SDK s':>10} {'kfp B/step':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            print(row(n, Path(tmp)), flush=True)
    print("target: 1,000 steps in under 1 s (ours column); times are medians in seconds")


if __name__ == "__main__":
    main()
