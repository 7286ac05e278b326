"""Helpers of the examples and templates tests: the CLI in a subprocess, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


class Shell:
    """Runs ``zenml-bridge`` (``python -m zenml_bridge``) and scripts with an environment of its
    own: no ZENML_BRIDGE_* of the caller, stores and tool homes under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_BRIDGE_")}
        self.env.update(
            ZENML_BRIDGE_HOME=str(root / "home"),
            ZENML_BRIDGE_CODE_CACHE=str(root / "code-cache"),
            BENTOML_HOME=str(root / "bentoml"),
            MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
            GX_ANALYTICS_ENABLED="false",
            PYTHONWARNINGS="ignore",
        )

    def run(
        self, *args: str, cwd: Path | None = None, expect: int = 0, **env: str
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, *args],
            cwd=cwd or self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert (
            result.returncode == expect
        ), f"{args} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        return result

    def cli(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "zenml_bridge", *args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    return Shell(tmp_path)
