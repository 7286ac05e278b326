"""Every user error of the core, with its message pinned: object, problem, fix, file:line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import pytest

from zenml_bridge import BridgeError, ir, pipeline, step
from zenml_bridge.dsl.trace import display_path

HERE = display_path(__file__)
SOURCE = Path(__file__).read_text(encoding="utf-8").splitlines()


def at(marker: str) -> str:
    """``file:line`` of the line that carries the comment ``# <marker>``."""
    lines = [i + 1 for i, text in enumerate(SOURCE) if text.rstrip().endswith(f"# {marker}")]
    assert len(lines) == 1, marker
    return f"{HERE}:{lines[0]}"


def raises(message: str) -> pytest.RaisesContext[BridgeError]:
    return pytest.raises(BridgeError, match=f"^{re.escape(message)}$")


@step
def load() -> int:
    return 1


@step
def want_str(text: str) -> str:
    return text


@step
def no_output() -> None:
    pass


@step  # dup-def
def dup() -> tuple[Annotated[int, "a"], Annotated[int, "a"]]:
    return 1, 2


def test_type_mismatch_between_output_and_input() -> None:
    @pipeline
    def flow() -> None:
        want_str(load())  # type-mismatch

    with raises(
        f"Step 'want_str' input 'text' expects str but 'load.output' is int "
        f"({at('type-mismatch')}). Change the annotation or the upstream step."
    ):
        flow.to_ir()


def test_type_mismatch_with_a_pipeline_parameter() -> None:
    @pipeline
    def flow(n: int = 1) -> None:
        want_str(n)  # param-mismatch

    with raises(
        f"Step 'want_str' input 'text' expects str but the pipeline parameter 'n' is int "
        f"({at('param-mismatch')}). Change one of the annotations."
    ):
        flow.to_ir()


def test_unknown_step_argument_suggests_the_closest() -> None:
    @pipeline
    def flow() -> None:
        want_str(texxt="a")  # unknown-arg

    with raises(
        f"Step 'want_str' has no argument 'texxt' ({at('unknown-arg')}). Did you mean 'text'? "
        "Its arguments: text."
    ):
        flow.to_ir()


def test_missing_step_argument() -> None:
    @pipeline
    def flow() -> None:
        want_str()  # missing-arg

    with raises(
        f"Step 'want_str' is missing the argument 'text' ({at('missing-arg')}). Pass a step "
        "output, a pipeline parameter or a value for it, or give it a default."
    ):
        flow.to_ir()


def test_too_many_positional_arguments() -> None:
    @pipeline
    def flow() -> None:
        want_str("a", "b")  # too-many

    with raises(
        f"Step 'want_str' takes 1 argument(s) but got 2 positional ones ({at('too-many')}). "
        "Pass inputs by name: text."
    ):
        flow.to_ir()


def test_pipeline_parameter_default_not_json() -> None:
    @pipeline  # bad-default
    def flow(when: complex = 1j) -> None:
        load()

    with raises(
        f"The default of parameter 'when' of pipeline 'flow' ({at('bad-default')}) is a "
        "builtins.complex (1j), which is not JSON-serializable. Use None, bool, int, float, "
        "str, or lists and dicts of them; build richer objects inside a step."
    ):
        flow.to_ir()


def test_step_literal_not_json() -> None:
    @pipeline
    def flow() -> None:
        want_str(text={1, 2})  # bad-literal

    with raises(
        f"Step 'want_str' input 'text' ({at('bad-literal')}) is a builtins.set ({{1, 2}}), "
        "which is not JSON-serializable. Use None, bool, int, float, str, or lists and dicts "
        "of them; build richer objects inside a step. To pass data between steps, return it "
        "from one step and pass that output."
    ):
        flow.to_ir()


def test_duplicate_output_names() -> None:
    @pipeline
    def flow() -> None:
        dup()

    with raises(
        f"Step 'dup' declares the output 'a' twice ({at('dup-def')}). Give each "
        "Annotated[T, 'name'] of the return type a distinct name."
    ):
        flow.to_ir()


def test_pipeline_name_that_maps_to_no_airflow_or_kubernetes_name() -> None:
    @pipeline(name="données")  # bad-pipeline-name
    def flow() -> None:
        load()

    with raises(
        f"Pipeline name 'données' cannot be used ({at('bad-pipeline-name')}): names must start "
        "with an ASCII letter and contain only ASCII letters, digits and '_' (at most 63 "
        "characters), so that they map to Airflow ids and Kubernetes names. Rename the function "
        "or pass @pipeline(name=...)."
    ):
        flow.to_ir()


def test_step_name_that_maps_to_no_airflow_or_kubernetes_name() -> None:
    bad = step(name="1st-step")(lambda: 1)

    @pipeline
    def flow() -> None:
        bad()  # bad-step-name

    with raises(
        f"Step name '1st-step' cannot be used ({at('bad-step-name')}): names must start with an "
        "ASCII letter and contain only ASCII letters, digits and '_' (at most 63 characters), "
        "so that they map to Airflow ids and Kubernetes names. Rename the function or pass "
        "@step(name=...)."
    ):
        flow.to_ir()


def test_ordinary_identifiers_are_accepted_and_mapped_deterministically() -> None:
    @step
    def make_frame() -> int:
        return 1

    @pipeline
    def my_flow() -> None:
        make_frame()

    p = my_flow.to_ir()
    assert [ir.k8s_name(n) for n in (p.name, *p.step_names)] == ["my-flow", "make-frame"]


def test_names_colliding_on_kubernetes_are_refused() -> None:
    upper = step(name="Load")(lambda: 1)

    @pipeline  # collision
    def flow() -> None:
        load()
        upper()

    with raises(
        "Steps 'load' and 'Load' both map to the Kubernetes name 'load'. Rename one of them. "
        f"(pipeline 'flow', {at('collision')})"
    ):
        flow.to_ir()


def test_step_result_used_in_an_expression() -> None:
    @pipeline
    def flow() -> None:
        want_str(str(load()))  # str-of-output

    with raises(
        "The output 'load.output' is a placeholder while the pipeline is defined; it cannot be "
        f"used in a Python expression (str()) at {at('str-of-output')}. Pass it to a step and "
        "do this computation inside that step."
    ):
        flow.to_ir()


def test_step_result_used_as_a_condition() -> None:
    @pipeline
    def flow() -> None:
        if load():  # if-output
            load()

    with raises(
        "The output 'load.output' is a placeholder while the pipeline is defined; it cannot be "
        f"used in a Python expression (truth value, e.g. `if` or `and`) at {at('if-output')}. "
        "Pass it to a step and do this computation inside that step."
    ):
        flow.to_ir()


def test_call_without_outputs_passed_as_data() -> None:
    @pipeline
    def flow() -> None:
        want_str(no_output())  # no-output

    with raises(
        "Step 'want_str' input 'text' gets the call of step 'no_output', which has no outputs "
        f"({at('no-output')}). Pass it as after='no_output', or give 'no_output' a return "
        "annotation."
    ):
        flow.to_ir()


def test_outputs_inside_a_collection() -> None:
    @pipeline
    def flow() -> None:
        want_str([load()])  # in-list

    with raises(
        "Step 'want_str' input 'text' gets a list that contains step outputs or parameters "
        f"({at('in-list')}); a step result can be passed only directly as an argument. Pass "
        "each as its own argument (or as *args), or build the collection inside a step."
    ):
        flow.to_ir()


def test_unpacking_a_single_output() -> None:
    @pipeline
    def flow() -> None:
        a, b = load()  # unpack

    with raises(
        "The output 'load.output' is a placeholder while the pipeline is defined; it cannot be "
        f"used in a Python expression (iteration or unpacking) at {at('unpack')}. Pass it to a "
        "step and do this computation inside that step."
    ):
        flow.to_ir()


def test_pipeline_that_calls_no_step() -> None:
    @pipeline  # empty
    def flow() -> None:
        pass

    with raises(
        "Pipeline 'flow' calls no step. Call at least one @step function in its body. "
        f"(pipeline 'flow', {at('empty')})"
    ):
        flow.to_ir()


def test_after_with_an_unknown_step_name() -> None:
    @pipeline
    def flow() -> None:
        load(after="lod")  # after-unknown

    with raises(
        "Step 'load' runs after='lod', but no step of that name was called before it "
        f"({at('after-unknown')})."
    ):
        flow.to_ir()


def test_unknown_step_option() -> None:
    with raises(
        f"@step has no option 'retry' ({HERE}:{at('bad-option').split(':')[-1]}). Did you mean "
        "'retries'? Options: retries, retry_delay, retry_backoff, max_retry_delay, cache, "
        "cache_salt, cache_code, cache_env, timeout, cpu, memory, gpu, image, env, allow_pickle, "
        "settings, on_failure, on_success."
    ):
        step(retry=2)(lambda: 1)  # type: ignore[call-overload]  # bad-option


def test_validation_lists_every_problem_at_once() -> None:
    bad = ir.Pipeline(
        name="p",
        source="m:p",
        source_file="m.py",
        source_line=1,
        steps=(
            ir.Step(
                name="a",
                source="m:a",
                source_file="m.py",
                source_line=1,
                code_hash="0",
                inputs=(ir.InputRef.of_output("x", "missing", "output"),),
                after=("a_2",),
            ),
        ),
    )
    with pytest.raises(ir.IRValidationError) as info:
        ir.validate(bad)
    assert info.value.problems == (
        "Step 'a' input 'x' reads from the unknown step 'missing'.",
        "Step 'a' runs after the unknown step 'a_2'.",
    )
    assert str(info.value).startswith("2 problems in the pipeline:\n  - Step 'a' input 'x'")


def test_run_parameters_unknown_and_missing() -> None:
    @pipeline
    def flow(rows: int, C: float = 1.0) -> None:
        load()

    with raises(
        "2 problems in the pipeline:\n"
        "  - Pipeline 'flow' has no parameter 'row'. Did you mean 'rows'? Its parameters: "
        "rows, C.\n"
        "  - Pipeline 'flow' needs a value for parameter 'rows' (int). Pass it with -p rows=VALUE."
    ):
        ir.check_run_parameters(flow.to_ir(), {"row": 5})


def test_run_parameter_of_the_wrong_type() -> None:
    @pipeline
    def flow(rows: int = 1, label: str = "x", ratio: float | None = None) -> None:
        load()

    with raises(
        "Parameter 'rows' of pipeline 'flow' expects int, got 'abc' (str). Pass a value of type "
        "int, e.g. -p rows=VALUE (VALUE is read as JSON)."
    ):
        ir.check_run_parameters(flow.to_ir(), {"rows": "abc"})
    with raises(
        "Parameter 'label' of pipeline 'flow' expects str, got 123 (int). Pass a value of type "
        "str, e.g. -p label=VALUE (VALUE is read as JSON). For text that looks like a number or "
        """JSON, quote it: -p label='"123"'."""
    ):
        ir.check_run_parameters(flow.to_ir(), {"label": 123})
    values = ir.check_run_parameters(flow.to_ir(), {"rows": 2, "ratio": 3, "label": "y"})
    assert values == {"rows": 2, "ratio": 3, "label": "y"}
    assert ir.check_run_parameters(flow.to_ir(), {"ratio": None})["ratio"] is None
