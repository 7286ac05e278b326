"""The IR is really immutable and hashable (issue 9 item 17), new fields keep old documents'
bytes, Optional parameters feed Optional inputs (item 18), and the code hash covers the code
that runs (item 1) under each ``cache_code`` policy."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import pickle
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from zenml_bridge import ir, pipeline, step
from zenml_bridge.dsl import codehash


def _step(**fields: object) -> ir.Step:
    values: dict[str, object] = {
        "name": "a",
        "source": "m:a",
        "source_file": "m.py",
        "source_line": 1,
        "code_hash": "0" * 64,
        "env": {"A": "1"},
        "settings": {"kubernetes": {"tolerations": [{"key": "gpu"}]}},
        "hooks": {"on_failure": "m:hook"},
        "inputs": (ir.InputRef.of_constant("x", {"k": [1, 2]}),),
    }
    values.update(fields)
    return ir.Step(**values)  # type: ignore[arg-type]


def _pipeline(**fields: object) -> ir.Pipeline:
    return ir.Pipeline(
        name="p",
        source="m:p",
        source_file="m.py",
        source_line=1,
        parameters=(ir.Parameter(name="xs", default=[1, 2]),),
        defaults={"env": {"B": "2"}},
        settings={"airflow": {"tags": ["a"]}},
        steps=(_step(),),
        **fields,  # type: ignore[arg-type]
    )


# -- 17: immutable, hashable ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        lambda p: p.steps[0].env.__setitem__("A", "2"),
        lambda p: p.steps[0].env.update(A="2"),
        lambda p: p.steps[0].settings["kubernetes"].__setitem__("x", 1),
        lambda p: p.steps[0].settings["kubernetes"]["tolerations"].append({}),
        lambda p: p.steps[0].hooks.pop("on_failure"),
        lambda p: p.steps[0].inputs[0].value["k"].append(3),
        lambda p: p.defaults["env"].clear(),
        lambda p: p.settings["airflow"]["tags"].__setitem__(0, "b"),
        lambda p: p.parameters[0].default.extend([3]),
    ],
)
def test_in_place_edits_are_refused_and_the_sha_cannot_go_stale(edit: object) -> None:
    pipeline_ir = _pipeline()
    before = ir.sha256(pipeline_ir)
    with pytest.raises(TypeError, match=re.escape("is immutable (part of a frozen pipeline IR)")):
        edit(pipeline_ir)  # type: ignore[operator]
    assert ir.sha256(pipeline_ir) == before


def test_ir_values_hash_and_compare_by_value() -> None:
    first, second = _pipeline(), _pipeline()
    assert hash(first.steps[0]) == hash(second.steps[0])
    assert hash(first) == hash(second) and first == second
    assert {first.steps[0], second.steps[0]} == {first.steps[0]}
    assert hash(_step(env={"A": "2"})) != hash(first.steps[0])


def test_frozen_values_still_behave_as_json_dicts_and_lists() -> None:
    pipeline_ir = _pipeline()
    step_ir = pipeline_ir.steps[0]
    assert isinstance(step_ir.env, dict) and step_ir.env == {"A": "1"}
    assert json.dumps(step_ir.settings) == '{"kubernetes": {"tolerations": [{"key": "gpu"}]}}'
    assert {**step_ir.env, "C": "3"} == {"A": "1", "C": "3"}
    assert step_ir.settings["kubernetes"]["tolerations"] + [1] == [{"key": "gpu"}, 1]
    assert pickle.loads(pickle.dumps(pipeline_ir)) == pipeline_ir
    assert copy.deepcopy(pipeline_ir) == pipeline_ir
    assert ir.loads(ir.dumps(pipeline_ir), ir.sha256(pipeline_ir)) == pipeline_ir
    changed = dataclasses.replace(step_ir, env={**step_ir.env, "A": "2"})
    with pytest.raises(TypeError):
        changed.env["A"] = "3"  # type: ignore[index]


def test_traced_ir_is_immutable() -> None:
    @step(env={"K": "v"}, settings={"kubernetes": {"node_selector": {"a": "b"}}})
    def produce() -> int:
        return 1

    @pipeline
    def flow() -> None:
        produce()

    traced = flow.to_ir()
    with pytest.raises(TypeError):
        traced.steps[0].env["K"] = "w"  # type: ignore[index]
    with pytest.raises(TypeError):
        traced.steps[0].settings["kubernetes"]["node_selector"]["a"] = "c"
    assert hash(traced.steps[0]) == hash(flow.to_ir().steps[0])


def test_new_fields_are_left_out_of_documents_while_default() -> None:
    old = _step()
    data = ir.to_dict(old)
    assert "cache_code" not in data and "cache_env_hash" not in data  # same bytes as before
    assert ir.from_dict(ir.Step, data).cache_code == "function"
    new = dataclasses.replace(old, cache_code="module", cache_env_hash="e" * 64)
    data = ir.to_dict(new)
    assert data["cache_code"] == "module" and data["cache_env_hash"] == "e" * 64
    assert ir.from_dict(ir.Step, data) == new
    schema = ir.json_schema()["$defs"]["Step"]
    assert schema["properties"]["cache_code"] == {"enum": ["function", "module", "project"]}
    assert "cache_code" not in schema["required"]


# -- 18: Optional parameters -----------------------------------------------------------------


def test_optional_parameter_feeds_an_optional_input() -> None:
    @step
    def use(x: Optional[int], y: int | None = None) -> int:  # noqa: UP007 - the issue's spelling
        return x or 0

    @pipeline
    def flow(x: Optional[int] = None, y: int | None = 3) -> None:  # noqa: UP007
        use(x=x, y=y)

    inputs = flow.to_ir().steps[0].inputs
    assert [(i.name, i.kind, i.type) for i in inputs] == [
        ("x", "parameter", "int | None"),
        ("y", "parameter", "int | None"),
    ]


def test_optional_parameter_still_cannot_feed_a_narrower_input() -> None:
    @step
    def use(x: str) -> int:
        return 0

    @pipeline
    def flow(x: Optional[int] = None) -> None:  # noqa: UP007
        use(x=x)

    with pytest.raises(ir.BridgeError, match=re.escape("expects str but the pipeline parameter")):
        flow.to_ir()


# -- 1: what the code hash covers ------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "proj"
    root.mkdir()
    sys.path.insert(0, str(root))
    before = set(sys.modules)
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in set(sys.modules) - before:
            del sys.modules[name]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _hash(module: str, policy: str) -> str:
    for name in [m for m in sys.modules if m.split(".")[0] in ("zbh_app", "zbh_util")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    func = importlib.import_module(module).work.func
    return codehash.code_hash(func, policy)[1]


APP = {
    "zbh_app/__init__.py": "",
    "zbh_app/steps.py": """
        from zenml_bridge import step

        from . import consts
        from zbh_app.helpers import double
        import zbh_util
        import json

        @step
        def work(x: int) -> int:
            return double(x) + consts.OFFSET + zbh_util.ONE + len(json.dumps(x))
        """,
    "zbh_app/helpers.py": "def double(x):\n    return 2 * x\n",
    "zbh_app/consts.py": "OFFSET = 1\n",
    "zbh_app/unused.py": "X = 1\n",
    "zbh_util.py": "ONE = 1\n",
}


@pytest.mark.parametrize(
    ("changed", "policies_that_notice"),
    [
        ("zbh_app/steps.py", {"module", "project"}),  # a comment outside the function
        ("zbh_app/helpers.py", {"module", "project"}),  # an absolute import of the package
        ("zbh_app/consts.py", {"module", "project"}),  # a relative import
        ("zbh_util.py", {"module"}),  # a project-local top-level module
        ("zbh_app/unused.py", {"project"}),  # in the package, imported by nobody
    ],
)
def test_code_hash_policies(project: Path, changed: str, policies_that_notice: set[str]) -> None:
    _write(project, APP)
    before = {p: _hash("zbh_app.steps", p) for p in codehash.POLICIES}
    _write(project, {changed: (project / changed).read_text() + "# edited, longer\n"})
    after = {p: _hash("zbh_app.steps", p) for p in codehash.POLICIES}
    noticed = {p for p in codehash.POLICIES if before[p] != after[p]}
    assert noticed == policies_that_notice


def test_code_hash_covers_the_files_it_names(project: Path) -> None:
    _write(project, APP)
    _hash("zbh_app.steps", "module")
    func = sys.modules["zbh_app.steps"].work.func
    covered = {Path(p).relative_to(project).as_posix() for p in codehash.covered_files(func)}
    # json (stdlib) and zenml_bridge are never covered; unused.py is not imported
    assert covered == {
        "zbh_app/__init__.py",
        "zbh_app/steps.py",
        "zbh_app/helpers.py",
        "zbh_app/consts.py",
        "zbh_util.py",
    }


def test_code_hash_is_the_same_for_the_same_files_elsewhere(tmp_path: Path) -> None:
    hashes = []
    for where in ("one", "two"):
        root = tmp_path / where
        root.mkdir()
        _write(root, APP)
        sys.path.insert(0, str(root))
        try:
            hashes.append(_hash("zbh_app.steps", "module"))
        finally:
            sys.path.remove(str(root))
    assert hashes[0] == hashes[1]  # module names and contents, never absolute paths


def test_installed_roots_cover_only_the_own_package(tmp_path: Path) -> None:
    root = tmp_path / "lib" / "site-packages"
    root.mkdir(parents=True)
    _write(root, APP)
    sys.path.insert(0, str(root))
    try:
        _hash("zbh_app.steps", "module")
        func = sys.modules["zbh_app.steps"].work.func
        covered = {Path(p).relative_to(root).as_posix() for p in codehash.covered_files(func)}
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] in ("zbh_app", "zbh_util")]:
            del sys.modules[name]
    assert "zbh_util.py" not in covered  # another distribution's module in site-packages
    assert "zbh_app/helpers.py" in covered


def test_cache_code_and_cache_env_reach_the_ir() -> None:
    @step(cache_code="function")
    def by_function() -> int:
        return 1

    @step(cache_env=True)
    def with_env() -> int:
        return 2

    @pipeline
    def flow() -> None:
        by_function()
        with_env()

    steps = {s.name: s for s in flow.to_ir().steps}
    assert steps["by_function"].cache_code == "function"
    assert steps["by_function"].code_hash == codehash.function_hash(by_function.func)
    assert steps["with_env"].cache_code == "module"
    assert re.fullmatch(r"[0-9a-f]{64}", steps["with_env"].cache_env_hash)
    assert steps["by_function"].cache_env_hash == ""


def test_unknown_cache_code_policy_is_refused() -> None:
    with pytest.raises(ir.BridgeError, match=re.escape("cache_code='everything' is not a policy")):

        @step(cache_code="everything")
        def nope() -> int:
            return 1
