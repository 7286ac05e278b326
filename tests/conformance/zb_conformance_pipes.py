"""The pipelines of the conformance suite: one per behaviour of the table in behaviour.py.

Every backend runs these very functions (imported from this file by the local runner, from the
code archive by Airflow's and Kubeflow's tasks). Outputs are deterministic, so their content
hashes must be the same on every backend.
"""

from __future__ import annotations

from typing import Annotated

from zenml_bridge import HTML, StopPipeline, get_step_context, pipeline, step

# -- data edges: a chain whose values flow step to step ------------------------------------------


@step
def load(rows: int = 5) -> list[int]:
    return [i * 3 % 7 for i in range(rows)]


@step
def double(values: list[int]) -> list[int]:
    return [v * 2 for v in values]


@step
def total(values: list[int]) -> int:
    return sum(values)


@pipeline
def data_edges(rows: int = 5) -> None:
    total(double(load(rows)))


# -- multi-output: one step, two named outputs, two consumers ------------------------------------


@step
def split(values: list[int]) -> tuple[Annotated[list[int], "low"], Annotated[list[int], "high"]]:
    return [v for v in values if v < 4], [v for v in values if v >= 4]


@step
def count(values: list[int]) -> int:
    return len(values)


@pipeline
def multi_output(rows: int = 6) -> None:
    low, high = split(load(rows))
    count(low)
    count(high)


# -- fan-in: three producers, one consumer -------------------------------------------------------


@step
def constant(value: int = 1) -> int:
    return value


@step
def join(a: int, b: int, c: int) -> dict[str, int]:
    return {"a": a, "b": b, "c": c, "sum": a + b + c}


@pipeline
def fan_in() -> None:
    join(constant(1), constant(20), constant(300))


# -- parameters: pipeline parameters of several types, overridden by the run ---------------------


@step
def describe(label: str, scale: float, tags: list[str] | None) -> dict[str, object]:
    return {"label": label, "scale": scale, "tags": tags or ["default"]}


@pipeline
def parameters(label: str = "base", scale: float = 1.0, tags: list[str] | None = None) -> None:
    describe(label, scale, tags)


# -- a failing step: the run fails, the step downstream is never run -----------------------------


@step
def prepare() -> int:
    return 41


@step
def explode(value: int) -> int:
    raise RuntimeError(f"conformance: explode fails on purpose at {value}")


@step
def after(value: int) -> int:
    return value + 1


@pipeline
def failing() -> None:
    after(explode(prepare()))


# -- a gate: StopPipeline keeps the report, stops the run, skips downstream ----------------------


@step
def measure(share: float = 0.6) -> float:
    return share


@step
def gate(
    share: float, limit: float = 0.3
) -> tuple[Annotated[HTML, "report"], Annotated[float, "passed"]]:
    report = HTML(f"<h1>drift share {share} (limit {limit})</h1>")
    if share > limit:
        raise StopPipeline(f"drift share {share} > {limit}", outputs={"report": report})
    return report, share


@step
def promote(share: float) -> str:
    return f"promoted at {share}"


@step
def announce(message: str) -> int:
    return len(message)


@pipeline
def gated(share: float = 0.6, limit: float = 0.3) -> None:
    report, passed = gate(measure(share), limit)
    announce(promote(passed))


# -- a tracked step: metrics logged through the step context -------------------------------------


@step
def train(rows: int = 4) -> float:
    accuracy = round(1 - 1 / (rows + 1), 4)
    context = get_step_context()
    context.log_metric("accuracy", accuracy)
    context.log_metric("rows", rows)
    return accuracy


@pipeline
def tracked(rows: int = 4) -> None:
    train(rows)


# -- an HTML visualization: a report kept as a page and shown as itself --------------------------


@step
def render(values: list[int]) -> HTML:
    cells = "".join(f"<td>{v}</td>" for v in values)
    return HTML(f"<table><tr>{cells}</tr></table>")


@pipeline
def html_report(rows: int = 4) -> None:
    render(load(rows))
