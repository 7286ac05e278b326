"""Golden-file helpers: compare generated text with tests/golden/<target>/<file>.

Set ZENML_BRIDGE_REGEN_GOLDEN=1 to rewrite the expected files, then review the diff.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from zenml_bridge.cli.source import load_pipeline
from zenml_bridge.dsl import Pipeline

GOLDEN = Path(__file__).parent
SHAPES = ("linear", "fan_out_in", "diamond", "multi_output", "params")


def shape_pipeline(shape: str) -> Pipeline:
    """The pipeline of a golden shape, imported exactly as the CLI imports SRC."""
    return load_pipeline(f"{GOLDEN / 'pipelines' / shape}.py:{shape}")


def check_golden(relative: str, actual: str) -> None:
    """Assert ``actual`` equals the golden file (or rewrite it when regenerating)."""
    path = GOLDEN / relative
    if os.environ.get("ZENML_BRIDGE_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"golden file {path} is missing; run with ZENML_BRIDGE_REGEN_GOLDEN=1")
    expected = path.read_text(encoding="utf-8")
    if expected != actual:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(True), actual.splitlines(True), str(path), "generated", n=2
            )
        )
        pytest.fail(f"{relative} differs from its golden file:\n{diff[:6000]}")
