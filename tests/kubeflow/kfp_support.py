"""Helpers shared by the Kubeflow tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"

#: Fixed worker-side locations so that golden files do not depend on the machine.
IR_URI = "s3://zenml-bridge/ir/{sha}.json"
ARCHIVE_URI = "s3://zenml-bridge/code/0f1e2d3c.tar.gz"
ARCHIVE_SHA = "0f1e2d3c" * 8
#: A published stack component config (the diamond golden carries one).
COMPONENTS_URI = "s3://zenml-bridge/components/4b5c6d7e.json"
COMPONENTS_SHA = "4b5c6d7e" * 8
IMAGE = "ghcr.io/example/zenml-bridge:0.1.0"


def options(out: Path, pipeline: Any = None, **overrides: Any) -> Any:
    """CompileOptions as the CLI would pass them after publishing the IR and code archive."""
    from zenml_bridge import ir
    from zenml_bridge.compilers.base import CompileOptions

    sha = ir.sha256(pipeline) if pipeline is not None else "0" * 64
    values: dict[str, Any] = {
        "out": out,
        "image": IMAGE,
        "ir_uri": IR_URI.format(sha=sha),
        "code_archive_uri": ARCHIVE_URI,
        "code_archive_sha256": ARCHIVE_SHA,
    }
    values.update(overrides)
    return CompileOptions(**values)
