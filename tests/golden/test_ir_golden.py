"""The IR of every golden shape is byte-identical to its checked-in file."""

from __future__ import annotations

import subprocess
import sys

import pytest
from golden_support import GOLDEN, SHAPES, check_golden, shape_pipeline

from zenml_bridge import ir


@pytest.mark.parametrize("shape", SHAPES)
def test_ir_matches_golden(shape: str) -> None:
    pipeline = shape_pipeline(shape).to_ir()
    check_golden(f"ir/{shape}.json", ir.dumps(pipeline))


@pytest.mark.parametrize("shape", SHAPES)
def test_golden_ir_loads_back_with_same_identity(shape: str) -> None:
    text = (GOLDEN / "ir" / f"{shape}.json").read_text(encoding="utf-8")
    expected = ir.sha256(shape_pipeline(shape).to_ir())
    loaded = ir.loads(text, expected_sha256=expected)
    assert ir.dumps(loaded) == text


def test_cli_output_is_byte_identical_across_processes(tmp_path) -> None:
    outputs = []
    for i in range(2):
        out = tmp_path / f"p{i}.json"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "zenml_bridge",
                "compile",
                f"{GOLDEN / 'pipelines' / 'diamond.py'}:diamond",
                "--target",
                "ir",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append((out.read_bytes(), result.stdout.split("sha256 ")[1].strip()))
    assert outputs[0] == outputs[1]
    assert outputs[0][1] == ir.sha256(ir.loads(outputs[0][0]))
    assert outputs[0][0].decode() == (GOLDEN / "ir" / "diamond.json").read_text(encoding="utf-8")
