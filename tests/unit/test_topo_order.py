"""``ir.topological_order`` is linear and orders exactly as the quadratic version did
(issue 16, item 2): rounds of ready steps, the given order within a round."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zenml_bridge import ir


def _reference_order(steps: Iterable[ir.Step]) -> tuple[ir.Step, ...]:
    """The implementation before issue 16 (quadratic on a chain), the behaviour to keep."""
    pending = {step.name: step for step in steps}
    done: set[str] = set()
    order: list[ir.Step] = []
    while pending:
        ready = [
            s for s in pending.values() if all(u in done or u not in pending for u in s.upstream)
        ]
        if not ready:
            cycle = ", ".join(sorted(pending))
            raise ValueError(
                f"The steps {cycle} depend on each other in a cycle. Remove an edge or an after=."
            )
        for step in ready:
            order.append(step)
            done.add(step.name)
            del pending[step.name]
    return tuple(order)


def _step(name: str, after: Iterable[str] = ()) -> ir.Step:
    return ir.Step(
        name=name,
        source=f"m:{name}",
        source_file="m.py",
        source_line=1,
        code_hash="0" * 64,
        after=tuple(after),
    )


@st.composite
def graphs(draw: st.DrawFn, acyclic: bool = True) -> list[ir.Step]:
    """Steps in a random order with random edges (to earlier-created steps when acyclic),
    sometimes naming a step that is not in the list."""
    n = draw(st.integers(min_value=0, max_value=25))
    names = [f"s{i}" for i in range(n)]
    steps = []
    for i, name in enumerate(names):
        pool = names[:i] if acyclic else names
        after = draw(st.lists(st.sampled_from(pool), max_size=4)) if pool else []
        if draw(st.booleans()) and i % 5 == 0:
            after.append("missing")
        steps.append(_step(name, after))
    return draw(st.permutations(steps))


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_same_order_as_the_reference_on_random_dags(steps: list[ir.Step]) -> None:
    assert ir.topological_order(steps) == _reference_order(steps)


@settings(max_examples=300, deadline=None)
@given(graphs(acyclic=False))
def test_same_order_or_same_cycle_message_on_random_graphs(steps: list[ir.Step]) -> None:
    try:
        expected = _reference_order(steps)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            ir.topological_order(steps)
    else:
        assert ir.topological_order(steps) == expected


def test_rounds_keep_the_given_order() -> None:
    steps = [_step("a"), _step("b", ["a"]), _step("c"), _step("d", ["b", "c"]), _step("e")]
    assert [s.name for s in ir.topological_order(steps)] == ["a", "c", "e", "b", "d"]


def test_long_chain_given_backwards() -> None:
    # 20,000 steps: the quadratic version took minutes here; the order is the chain's.
    n = 20_000
    steps = [_step(f"s{i}", [f"s{i - 1}"] if i else []) for i in reversed(range(n))]
    assert [s.name for s in ir.topological_order(steps)] == [f"s{i}" for i in range(n)]


def test_cycle_names_every_step_that_cannot_be_ordered() -> None:
    steps = [_step("a", ["c"]), _step("b", ["a"]), _step("c", ["b"]), _step("d", ["c"]), _step("e")]
    message = "The steps a, b, c, d depend on each other in a cycle. Remove an edge or an after=."
    with pytest.raises(ValueError, match=re.escape(message)):
        ir.topological_order(steps)
