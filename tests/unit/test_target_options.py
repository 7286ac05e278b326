"""Target options: each compiler declares and checks its own (``-o NAME=VALUE`` and aliases)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zenml_bridge import BridgeError
from zenml_bridge.cli.compile_cmd import ALIAS_FLAGS
from zenml_bridge.compilers import get_compiler
from zenml_bridge.compilers.base import parse_target_options

LINEAR = Path(__file__).parents[1] / "golden" / "pipelines" / "linear.py"


def test_every_alias_flag_is_declared_by_exactly_its_target() -> None:
    declared = {
        (option.flag, target, option.kind == "bool")
        for target in ("ir", "airflow", "kubeflow")
        for option in get_compiler(target).target_options
        if option.flag
    }
    assert declared == set(ALIAS_FLAGS)


def test_defaults_and_spellings() -> None:
    options = get_compiler("airflow").target_options
    values = parse_target_options("airflow", options, {"dag-id-prefix": "team_", "force": "yes"})
    assert values == {"operator": "bash", "python": None, "dag_id_prefix": "team_", "force": True}


def test_every_problem_is_reported_at_once() -> None:
    options = get_compiler("airflow").target_options
    with pytest.raises(BridgeError) as info:
        parse_target_options(
            "airflow", options, {"operater": "docker", "force": "maybe", "executor": "x"}
        )
    message = str(info.value)
    assert "'operater' is not an option of target airflow. Did you mean 'operator'?" in message
    assert "-o force=maybe: use true or false." in message
    assert "'executor' is not an option of target airflow." in message
    assert "Its options: dag_id_prefix, force, operator, python." in message


def _compile(tmp_path: Path, target: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'md.db'}",
        "ZENML_BRIDGE_HOME": str(tmp_path / "home"),
    }
    return subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "compile", f"{LINEAR}:linear", "--target", target,
         *args],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip


def test_option_and_alias_write_the_same_dag(tmp_path: Path) -> None:
    by_option = tmp_path / "a"
    by_alias = tmp_path / "b"
    for out in (by_option, by_alias):
        out.mkdir()
    first = _compile(tmp_path, "airflow", "--out", str(by_option), "-o", "operator=docker",
                     "-o", "dag_id_prefix=team_", "--image", "img:1")  # fmt: skip
    second = _compile(tmp_path, "airflow", "--out", str(by_alias), "--operator", "docker",
                      "--dag-id-prefix", "team_", "--image", "img:1")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    [dag_a] = by_option.glob("*.py")
    [dag_b] = by_alias.glob("*.py")
    assert dag_a.name == dag_b.name == "zenml_bridge__team_linear.py"
    assert dag_a.read_text() == dag_b.read_text()
    assert "DockerOperator" in dag_a.read_text()


@pytest.mark.parametrize(
    ("target", "args", "message"),
    [
        ("kubeflow", ("--operator", "docker"),
         "--operator is an option of target airflow, not kubeflow."),
        ("airflow", ("-o", "operator=kubernets"),
         "-o operator=kubernets: not one of bash, kubernetes, docker. Did you mean 'kubernetes'?"),
        ("airflow", ("-o", "operator"), "Target option 'operator' is not NAME=VALUE."),
        ("ir", ("-o", "force=true"), "'force' is not an option of target ir."),
    ],
)  # fmt: skip
def test_bad_target_options_exit_2_before_anything_is_written(
    tmp_path: Path, target: str, args: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    done = _compile(tmp_path, target, "--out", str(out / "p.yaml"), *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert list(out.iterdir()) == []
    assert not (tmp_path / "artifacts").exists()
