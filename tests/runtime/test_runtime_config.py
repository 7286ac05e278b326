"""Settings precedence: environment > run config > active stack > default location."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zenml_bridge.config import RunConfig, load_run_config, load_settings, write_config
from zenml_bridge.errors import BridgeError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("ZENML_BRIDGE_METADATA_URL", "ZENML_BRIDGE_ARTIFACT_ROOT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
    root = tmp_path / "project"
    (root / "a" / "b").mkdir(parents=True)
    write_config(
        root,
        {
            "version": 1,
            "active_stack": "default",
            "stacks": {
                "default": {},
                "team": {"metadata_url": "sqlite:///team.db", "artifact_root": "team-art"},
            },
        },
    )
    monkeypatch.chdir(root / "a" / "b")
    return root


def test_project_default_is_found_walking_up(project: Path) -> None:
    settings = load_settings()
    assert settings.project == project
    assert settings.metadata_url == f"sqlite:///{project / '.zenml_bridge' / 'metadata.db'}"
    assert settings.artifact_root == str(project / ".zenml_bridge" / "artifacts")


def test_stack_paths_are_relative_to_the_config_folder(project: Path) -> None:
    settings = load_settings(stack="team")
    assert settings.metadata_url == f"sqlite:///{project / '.zenml_bridge' / 'team.db'}"
    assert settings.artifact_root == str(project / ".zenml_bridge" / "team-art")


def test_run_config_beats_stack_and_environment_beats_both(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = RunConfig(stack="team", artifact_root="/data/art")
    settings = load_settings(config)
    assert settings.artifact_root == "/data/art"
    assert settings.metadata_url.endswith("team.db")
    monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", "s3://bucket/zb")
    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", "postgresql://u@h:5432/db")
    settings = load_settings(config)
    assert (settings.metadata_url, settings.artifact_root) == (
        "postgresql://u@h:5432/db",
        "s3://bucket/zb",
    )


def test_unknown_stack(project: Path) -> None:
    with pytest.raises(BridgeError, match="There is no stack 'teem'. Did you mean 'team'?"):
        load_settings(stack="teem")


def test_without_project_the_default_home_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("ZENML_BRIDGE_METADATA_URL", "ZENML_BRIDGE_ARTIFACT_ROOT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.project is None
    assert settings.metadata_url == f"sqlite:///{tmp_path / 'home' / 'metadata.db'}"


def test_run_config_yaml_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("pipeline: p.py:x\nparameters: {rows: 5}\nparallel: 2\n")
    config = load_run_config(path)
    assert (config.pipeline, dict(config.parameters), config.parallel) == ("p.py:x", {"rows": 5}, 2)
    path.write_text("parallel: two\n")
    with pytest.raises(BridgeError, match="'parallel' in the run config .* must be a whole number"):
        load_run_config(path)
    path.write_text("- a list\n")
    with pytest.raises(BridgeError, match="must hold a mapping"):
        load_run_config(path)
    path.write_text("experiment_tracker: mlflow\n")
    with pytest.raises(BridgeError, match="with a 'flavor'"):
        load_run_config(path)
    with pytest.raises(BridgeError, match="does not exist"):
        load_run_config(tmp_path / "missing.yaml")


def test_config_is_json_compatible_yaml(project: Path) -> None:
    text = (project / ".zenml_bridge" / "config.yaml").read_text()
    assert json.loads(text)["active_stack"] == "default"
    (project / ".zenml_bridge" / "config.yaml").write_text(
        "active_stack: default\nstacks:\n  default:\n    artifact_root: /x/art\n"
    )
    assert load_settings().artifact_root == "/x/art"
    (project / ".zenml_bridge" / "config.yaml").write_text("stacks: {default: {artifact_rot: x}}")
    with pytest.raises(BridgeError, match="key 'artifact_rot'. Did you mean 'artifact_root'?"):
        load_settings()
