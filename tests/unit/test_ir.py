"""The IR: canonical JSON, identity, strict loading, schema, ordering."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest

from zenml_bridge import BridgeError, ir

GOLDEN_IR = sorted((Path(__file__).parents[1] / "golden" / "ir").glob("*.json"))


def make_step(name: str, *upstream: str) -> ir.Step:
    return ir.Step(
        name=name,
        source=f"m:{name}",
        source_file="m.py",
        source_line=1,
        code_hash="0" * 64,
        inputs=tuple(ir.InputRef.of_output(f"in_{u}", u, "output") for u in upstream),
        outputs=(ir.OutputSpec(name="output"),),
    )


def make_pipeline(*steps: ir.Step) -> ir.Pipeline:
    return ir.Pipeline(name="p", source="m:p", source_file="m.py", source_line=1, steps=steps)


def test_roundtrip_and_identity_are_stable() -> None:
    p = make_pipeline(make_step("a"), make_step("b", "a"))
    text = ir.dumps(p)
    assert ir.loads(text) == p
    assert ir.sha256(ir.loads(text)) == ir.sha256(p)
    # canonical: sorted keys, compact, so key order in the input never matters
    assert (
        ir.canonical_json(p)
        == json.dumps(
            json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )


def test_identity_changes_with_any_field() -> None:
    p = make_pipeline(make_step("a"))
    changed = dataclasses.replace(p, schedule="@daily")
    assert ir.sha256(changed) != ir.sha256(p)
    assert p.schedule is None  # replace returns a copy


def test_loads_refuses_unknown_fields_and_versions() -> None:
    data = json.loads(ir.dumps(make_pipeline(make_step("a"))))
    data["steps"][0]["colour"] = "red"
    with pytest.raises(BridgeError, match=r"IR object 'Pipeline.steps\[0\]' has unknown field"):
        ir.loads(json.dumps(data))
    data["steps"][0].pop("colour")
    data["ir_version"] = "99"
    with pytest.raises(BridgeError, match="has ir_version '99'; this zenml-bridge reads '1'"):
        ir.loads(json.dumps(data))
    data["ir_version"] = "1"
    data["steps"][0]["retry"]["max_retries"] = "two"
    with pytest.raises(BridgeError, match=r"'Pipeline.steps\[0\].retry.max_retries' must be int"):
        ir.loads(json.dumps(data))


def test_loads_refuses_a_changed_document() -> None:
    p = make_pipeline(make_step("a"))
    tampered = ir.dumps(p).replace('"schedule": null', '"schedule": "@hourly"')
    with pytest.raises(BridgeError, match="was changed after compiling"):
        ir.loads(tampered, expected_sha256=ir.sha256(p))


@pytest.mark.parametrize("path", GOLDEN_IR, ids=lambda p: p.stem)
def test_schema_accepts_every_golden_ir(path: Path) -> None:
    jsonschema.Draft202012Validator(ir.json_schema()).validate(json.loads(path.read_text()))


def test_schema_rejects_what_loads_rejects() -> None:
    schema = ir.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(GOLDEN_IR[0].read_text())
    data["steps"][0]["inputs"] = [{"name": "x", "kind": "bogus"}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_topological_order_keeps_given_order_for_ties() -> None:
    steps = (make_step("c", "a", "b"), make_step("a"), make_step("b", "a"))
    assert [s.name for s in ir.topological_order(steps)] == ["a", "b", "c"]


def test_cycle_is_reported() -> None:
    with pytest.raises(ir.IRValidationError, match="The steps a, b depend on each other"):
        ir.validate(make_pipeline(make_step("a", "b"), make_step("b", "a")))


def test_k8s_names() -> None:
    assert ir.k8s_name("make_frame") == "make-frame"
    assert ir.k8s_name("Train_Model_2") == "train-model-2"
    assert ir.k8s_name("lambda_") == "lambda"
    assert ir.name_problem("Step", "a" * 63) is None
    assert ir.name_problem("Step", "a" * 64) is not None
