"""The DSL: outputs from annotations, edges, parameters, naming, plain calls."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import pytest

from zenml_bridge import ir, pipeline, step


@step
def produce(n: int = 3) -> list[int]:
    """Produce numbers.

    More text that is not part of the description.
    """
    return list(range(n))


@step
def pair(values: list[int]) -> tuple[Annotated[int, "first"], Annotated[int, "last"]]:
    return values[0], values[-1]


@step
def nothing(value: int) -> None:
    pass


@step
def add(a: int, b: int = 1) -> int:
    return a + b


@step
def untyped(x):  # type: ignore[no-untyped-def]
    return x


def test_step_outside_pipeline_is_a_plain_call() -> None:
    assert produce(2) == [0, 1]
    assert add(1, b=5) == 6
    assert pair([4, 5, 6]) == (4, 6)
    assert produce.__doc__ is not None and produce.__name__ == "produce"


def test_outputs_from_annotations() -> None:
    assert [o.name for o in produce.outputs] == ["output"]
    assert [o.name for o in pair.outputs] == ["first", "last"]
    assert nothing.outputs == []
    assert [(o.name, o.annotation) for o in untyped.outputs] == [("output", Any)]

    @step
    def unnamed_tuple() -> tuple[int, str]:
        return 1, "a"

    assert [o.name for o in unnamed_tuple.outputs] == ["output"]


def test_edges_parameters_constants_and_descriptions() -> None:
    @pipeline
    def flow(n: int = 5) -> None:
        first, last = pair(produce(n=n))
        add(first, b=last)
        add(first)

    p = flow.to_ir()
    assert p.step_names == ("produce", "pair", "add", "add_2")
    assert p.parameters == (ir.Parameter(name="n", type="int", default=5),)
    assert p.step("produce").inputs == (ir.InputRef.of_parameter("n", "n", "int"),)
    assert p.step("produce").description == "Produce numbers."
    assert p.step("add").inputs == (
        ir.InputRef.of_output("a", "pair", "first", "int"),
        ir.InputRef.of_output("b", "pair", "last", "int"),
    )
    assert p.step("add_2").inputs[1] == ir.InputRef.of_constant("b", 1, "int")
    assert p.step("add").upstream == ("pair",)
    assert p.downstream("pair") == ("add", "add_2")
    assert p.step("pair").outputs == (
        ir.OutputSpec(name="first", type="int"),
        ir.OutputSpec(name="last", type="int"),
    )


def test_after_gives_order_only_edges() -> None:
    @pipeline
    def flow() -> None:
        done = nothing(1)
        values = produce(after=done)
        add(2, after=[values, "nothing"])

    p = flow.to_ir()
    assert p.step("produce").after == ("nothing",)
    assert p.step("add").after == ("nothing", "produce")
    assert p.step("add").upstream == ("nothing", "produce")


def test_varargs_fan_in_and_call_with_inputs() -> None:
    @step
    def combine(base: int, *parts: int, scale: int = 1) -> int:
        return (base + sum(parts)) * scale

    @pipeline
    def flow() -> None:
        combine(add(1), *[add(i) for i in range(3)], scale=2)

    p = flow.to_ir()
    assert [ref.name for ref in p.step("combine").inputs] == [
        "base",
        "parts.0",
        "parts.1",
        "parts.2",
        "scale",
    ]
    values = {"base": 1, "parts.1": 10, "parts.0": 5, "parts.2": 20, "scale": 2}
    assert combine.call_with_inputs(values) == 72


def test_step_options_and_pipeline_defaults() -> None:
    @step(
        retries=3,
        retry_delay=2,
        retry_backoff=2.0,
        cache=False,
        timeout=30,
        cpu=1,
        memory="1Gi",
        gpu=1,
        image="img:1",
        env={"A": "b"},
        allow_pickle=True,
        settings={"kubernetes": {"node_selector": {"pool": "gpu"}}},
    )
    def heavy() -> int:
        return 1

    @pipeline(retries=1, image="base:2", schedule="@daily", settings={"airflow": {"tags": ["x"]}})
    def flow() -> None:
        heavy()
        add(1)

    p = flow.to_ir()
    h, a = p.step("heavy"), p.step("add")
    assert h.retry == ir.RetryPolicy(max_retries=3, delay_s=2.0, backoff_factor=2.0)
    assert (h.cache, h.timeout_s, h.image, h.env, h.allow_pickle) == (
        False,
        30.0,
        "img:1",
        {"A": "b"},
        True,
    )
    assert h.resources == ir.Resources(cpu="1", memory="1Gi", gpu=1)
    assert h.settings == {"kubernetes": {"node_selector": {"pool": "gpu"}}}
    assert a.retry.max_retries == 1 and a.image == "base:2" and a.cache is True
    assert p.schedule == "@daily" and p.settings == {"airflow": {"tags": ["x"]}}
    assert p.defaults == {"image": "base:2", "retries": 1}


def test_hooks_are_recorded_as_sources() -> None:
    def alert(exc: BaseException) -> None:
        pass

    @step(on_failure=alert)
    def risky() -> int:
        return 1

    @pipeline
    def flow() -> None:
        risky()

    assert flow.to_ir().step("risky").hooks == {
        "on_failure": f"{__name__}:test_hooks_are_recorded_as_sources.<locals>.alert"
    }


def test_required_pipeline_parameter_and_resolution() -> None:
    @pipeline
    def flow(n: int, label: str = "x") -> None:
        produce(n=n)

    p = flow.to_ir()
    assert p.parameters[0] == ir.Parameter(name="n", type="int", default=None, required=True)
    assert ir.check_run_parameters(p, {"n": 4}) == {"label": "x", "n": 4}


def test_ir_is_traced_once_and_frozen() -> None:
    @pipeline
    def flow() -> None:
        produce()

    assert flow.to_ir() is flow.to_ir()
    with pytest.raises(dataclasses.FrozenInstanceError):
        flow.to_ir().name = "other"  # type: ignore[misc]


def test_code_hash_follows_the_source() -> None:
    def make(body: int) -> Any:
        namespace: dict[str, Any] = {}
        exec(f"def f() -> int:\n    return {body}\n", namespace)
        return namespace["f"]

    # exec'd functions have no source file: the hash falls back to bytecode and constants
    assert step(make(1)).code_hash != step(make(2)).code_hash
    assert step(make(1)).code_hash == step(make(1)).code_hash
    assert len(produce.code_hash) == 64


def test_type_names_use_the_public_path_of_a_class() -> None:
    import collections
    import json as json_module

    from zenml_bridge.dsl.types import type_name

    # defined in json.decoder, exported by json: named by the public path
    assert type_name(json_module.JSONDecoder) == "json.JSONDecoder"
    # a class that no parent package exports keeps its defining module
    assert type_name(collections.OrderedDict) == "collections.OrderedDict"
    assert type_name(json_module.decoder.JSONDecodeError) == "json.JSONDecodeError"
    assert type_name(list[json_module.JSONDecoder]) == "list[json.JSONDecoder]"
