"""The stack's components travel with a compiled pipeline (issue 12): `zenml-bridge compile`
publishes them beside the IR (content-addressed, secrets only as ${ENV} references), the DAG
passes them by reference, and a worker with no project config builds the same components.
Literal secrets and local-only flavors are refused before anything is written."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_stack_components import install_flavors

SECRET = "s3cr3t-value-never-written"


def project(tmp_path: Path, components: dict[str, Any]) -> tuple[Path, dict[str, str]]:
    """A project with one stack (local stores) and the test flavors installed."""
    site = install_flavors(tmp_path / "site")
    folder = tmp_path / "project"
    (folder / ".zenml_bridge").mkdir(parents=True)
    stack = {
        "metadata_url": f"sqlite:///{tmp_path / 'metadata.db'}",
        "artifact_root": str(tmp_path / "artifacts"),
        "components": components,
    }
    config = {"version": 1, "active_stack": "default", "stacks": {"default": stack}}
    (folder / ".zenml_bridge" / "config.yaml").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_BRIDGE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["ZENML_BRIDGE_HOME"] = str(tmp_path / "worker-home")
    return folder, env


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


def dag_literal(path: Path) -> Any:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PIPELINE":
            return ast.literal_eval(node.value)
    raise AssertionError("no PIPELINE literal")


def test_worker_builds_the_published_components_with_env_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    components = {
        "data_validator": {
            "flavor": "threshold",
            "max_share": 0.2,
            "api_token": "${ZB_TEST_TOKEN}",
            "url": "https://${ZB_TEST_USER}:${ZB_TEST_TOKEN}@validator.example/api",
        }
    }
    folder, env = project(tmp_path, components)
    dags = tmp_path / "dags"
    compiled = run(
        ["zenml_bridge", "compile", "zb_test_flavors:configured", "--target", "airflow",
         "--out", str(dags)],
        folder, env,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr
    data = dag_literal(dags / "zenml_bridge__configured.py")
    uri, sha = data["components_uri"], data["components_sha256"]
    assert uri == str(tmp_path / "artifacts" / ".zenml_bridge" / "components" / f"{sha}.json")
    published = Path(uri).read_text()
    assert json.loads(published)["components"] == components  # references kept as written
    assert f"stack components {sha[:12]}: data_validator=threshold" in compiled.stdout

    # A worker: another folder (no project config), its own environment holds the secret.
    worker = tmp_path / "worker"
    worker.mkdir()
    worker_env = {
        **env,
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'metadata.db'}",
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ZB_TEST_TOKEN": SECRET,
        "ZB_TEST_USER": "bot",
    }
    step = [
        "zenml_bridge.entrypoint", "run-step", "--ir", data["ir_uri"], "--ir-sha256",
        data["ir_sha256"], "--step", "show_config", "--run-id", "worker-run",
        "--components", uri, "--components-sha256", sha,
    ]  # fmt: skip
    done = run(step, worker, worker_env)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    for path in [*dags.iterdir(), *Path(uri).parent.iterdir()]:
        assert SECRET not in path.read_text()
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in ("ZENML_BRIDGE_METADATA_URL", "ZENML_BRIDGE_ARTIFACT_ROOT", "ZENML_BRIDGE_HOME"):
        monkeypatch.setenv(name, worker_env[name])
    from zenml_bridge.runtime import load_run

    config = load_run("worker-run").steps["show_config"].outputs["output"].load()
    assert config == {
        "max_share": 0.2,
        "api_token": SECRET,
        "url": f"https://bot:{SECRET}@validator.example/api",
    }

    # The worker without the variable: a message naming the reference and where to set it.
    again = [*step, "--no-cache"]  # a cache hit builds no component
    missing = run([*again, "--run-id", "worker-run-2"], worker,
                  {k: v for k, v in worker_env.items() if k != "ZB_TEST_TOKEN"})  # fmt: skip
    assert missing.returncode != 0
    assert "data_validator.api_token refers to ${ZB_TEST_TOKEN}" in missing.stdout + missing.stderr

    # A changed file is refused by its hash.
    Path(uri).write_text(published.replace("0.2", "0.9"))
    changed = run([*again, "--run-id", "worker-run-3"], worker, worker_env)
    assert changed.returncode == 2
    assert "has sha256" in changed.stderr and f"expected {sha}" in changed.stderr


@pytest.mark.parametrize("target", ["airflow", "kubeflow"])
def test_literal_secrets_are_refused_and_nothing_is_written(tmp_path: Path, target: str) -> None:
    components = {
        "data_validator": {"flavor": "threshold", "password": SECRET, "token": "${OK_TOKEN}"},
        "experiment_tracker": {"flavor": "oldstyle", "tracking_uri": f"http://u:{SECRET}@h"},
    }
    folder, env = project(tmp_path, components)
    out = tmp_path / ("dags" if target == "airflow" else "p.yaml")
    done = run(
        ["zenml_bridge", "compile", "zb_test_flavors:configured", "--target", target,
         "--out", str(out)],
        folder, env,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and SECRET not in done.stdout + done.stderr
    message = done.stderr
    assert "The components of stack 'default' would be published" in message
    assert "data_validator.password holds a literal secret; write it as " in message
    assert "${DATA_VALIDATOR_PASSWORD}" in message
    assert "experiment_tracker.tracking_uri is a URL with credentials (http://u:***@h)" in message
    assert "data_validator.token" not in message  # a reference is fine
    assert not out.exists() and not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("target", ["airflow", "kubeflow"])
def test_local_only_component_fails_a_worker_compile(tmp_path: Path, target: str) -> None:
    if target == "kubeflow":
        pytest.importorskip("kfp", reason="the kubeflow tox env runs this case")
    folder, env = project(tmp_path, {"data_validator": {"flavor": "laptop"}})
    out = tmp_path / ("dags" if target == "airflow" else "p.yaml")
    args = ["zenml_bridge", "compile", "zb_test_flavors:configured", "--target", target,
            "--out", str(out)]  # fmt: skip
    if target == "kubeflow":
        args += ["--executor", "lightweight"]
    done = run(args, folder, env)
    assert done.returncode == 2, done.stderr
    assert (
        "components.data_validator: the data_validator flavor 'laptop' works only on this "
        f"machine (local_only), but {target} runs steps on workers" in done.stderr
    )
    assert not out.exists()
    # The IR target describes the pipeline only: no workers, no refusal.
    ir_done = run(["zenml_bridge", "compile", "zb_test_flavors:configured", "--target", "ir",
                   "--out", str(tmp_path / "p.json")], folder, env)  # fmt: skip
    assert ir_done.returncode == 0, ir_done.stderr
