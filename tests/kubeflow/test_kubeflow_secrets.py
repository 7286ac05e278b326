"""Issue 9, item 14: an artifact root with credentials never reaches the Kubeflow YAML."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zenml_bridge.cli.main import main

GOLDEN = Path(__file__).parents[1] / "golden" / "pipelines"
SECRET = "s3cr3t-Pw"
COMPILE = ["compile", f"{GOLDEN / 'linear.py'}:linear", "--target", "kubeflow"]
COMPILE += ["--image", "registry.example/zb:1", "--out"]


@pytest.mark.parametrize(
    "root", [f"memory://user:{SECRET}@bucket/zb", "memory://bucket/zb?token=" + SECRET]
)
def test_compile_refuses_an_artifact_root_with_credentials(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root: str,
) -> None:
    monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", f"sqlite:///{tmp_path / 'metadata.db'}")
    monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", f"{root}-{os.urandom(3).hex()}")
    monkeypatch.chdir(tmp_path)
    out_file = tmp_path / "out" / "linear.yaml"
    code = main([*COMPILE, str(out_file)])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in err and SECRET not in out + err
    assert "contains credentials" in err and "Kubernetes Secret" in err
    assert not out_file.exists()
    # Without the credentials the same compile works: they are the only problem.
    monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    assert main([*COMPILE, str(out_file)]) == 0
    assert out_file.is_file()
