"""Hostile text never becomes code: generated files parse, hold only the template's statements,
and give back every value exactly."""

from __future__ import annotations

import ast
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from support import compile_to, data_of, make_pipeline, make_step

from zenml_bridge import ir
from zenml_bridge.compilers.airflow import render, same_value

HOSTILE = [
    "'",
    '"',
    "'''",
    '"""',
    "\\",
    "\\'",
    "\n",
    "\r\n",
    "{{ ds }}",
    "{% raw %}",
    "{{ '{{' }}",
    "__import__('os').system('echo owned')",
    '"); import os; os.system("x"); ("',
    "'''\nimport os\n'''",
    "$HOME `id` $(id)",
    "x.sh",
    "ünïcødé ✓ 🚀 \u2028 \u0085",
    "\t\x0b\x0c",
    "PIPELINE = {}",
]
text = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40))
hostile = st.lists(text, min_size=1, max_size=4).map("".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | hostile,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile, inner, max_size=4),
    max_leaves=12,
)
names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True)


@settings(max_examples=100, deadline=None, database=None)
@given(
    values=st.lists(json_values, min_size=1, max_size=4),
    description=hostile,
    step_description=hostile,
    env=st.dictionaries(names, hostile.filter(lambda v: "\0" not in v), max_size=3),
    image=hostile.filter(bool),
    schedule=st.sampled_from([None, "@daily", "0 6 * * *"]),
)
def test_hostile_values_round_trip_exactly(
    values: list[Any],
    description: str,
    step_description: str,
    env: dict[str, str],
    image: str,
    schedule: str | None,
) -> None:
    parameters = tuple(
        ir.Parameter(name=f"p{i}", type="Any", default=value) for i, value in enumerate(values)
    )
    step = make_step("a", description=step_description, env=env, image=image)
    pipeline = make_pipeline(
        step, description=description, parameters=parameters, schedule=schedule
    )
    with tempfile.TemporaryDirectory() as folder:
        _, source = compile_to(pipeline, Path(folder), operator="kubernetes")
    data = data_of(source)  # parses, and is the template plus the one literal
    assert same_value([p["default"] for p in data["parameters"]], values)
    assert data["description"] == description
    assert data["schedule"] == schedule
    assert data["steps"][0]["description"] == step_description
    assert data["steps"][0]["env"] == env
    assert data["steps"][0]["image"] == image


@settings(max_examples=100, deadline=None, database=None)
@given(strings=st.dictionaries(names, hostile, min_size=1, max_size=6), nested=json_values)
def test_rendering_any_data_gives_one_literal(strings: dict[str, str], nested: Any) -> None:
    # Below the compiler's checks: even values it would refuse (a broken schedule) stay data.
    data = {"schedule": strings.get("schedule", "{{ x }}'''"), "strings": strings, "n": nested}
    source = render(data)
    tree = ast.parse(source)
    assert same_value(data_of(source), data)
    assert not [
        node for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id == "__import__"
    ]
