"""End to end: compile with the CLI, run the YAML with kfp.local, compare with a local run.

Every process is real: ``zenml-bridge compile`` publishes the IR and the code archive,
kfp.local's SubprocessRunner (no venv, no network) runs each task through KFP's own Python
executor, which calls our entrypoint; a local ``zenml-bridge run`` of the same source into other
stores must give the same artifacts (content hashes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp_support import GOLDEN_DIR

from zenml_bridge.stores.metadata import MetadataStore

pytestmark = pytest.mark.slow

KFP_RUNNER = """
import json, sys
from kfp import components, local
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
pipeline = components.load_component_from_file(sys.argv[1])
pipeline(**json.loads(sys.argv[3]))
"""
HOSTILE = 'it\'s "quoted" \\ back\nslash: ünï ✓ {{ x }}'


def _env(tmp_path: Path, name: str) -> dict[str, str]:
    return {
        **os.environ,
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / name}.db",
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / f"{name}_artifacts"),
        "ZENML_BRIDGE_HOME": str(tmp_path / "home"),
        "ZENML_BRIDGE_CODE_CACHE": str(tmp_path / "code_cache"),
    }


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=400)
    assert (
        result.returncode == 0
    ), f"{args[:4]} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def _hashes(db: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    store = MetadataStore(f"sqlite:///{db}")
    (run,) = store.list_runs()
    steps = store.step_runs(run["run_id"])
    return dict(run), {
        name: {out: info["sha256"] for out, info in row["outputs"].items()}
        for name, row in steps.items()
    }


def _params_args(params: dict[str, Any]) -> list[str]:
    return [arg for k, v in params.items() for arg in ("-p", f"{k}={json.dumps(v)}")]


@pytest.mark.parametrize(
    ("shape", "compile_params", "run_params"),
    [
        ("multi_output", {}, {}),
        ("fan_out_in", {}, {}),
        ("diamond", {}, {}),
        ("params", {"rows": 7}, {"label": HOSTILE, "seed": 3, "weights": [0.25, 1.5]}),
    ],
)
def test_kfp_local_run_gives_the_same_artifacts_as_a_local_run(
    tmp_path: Path, shape: str, compile_params: dict[str, Any], run_params: dict[str, Any]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(GOLDEN_DIR / "pipelines" / f"{shape}.py", project / f"{shape}.py")
    elsewhere = tmp_path / "elsewhere"  # not the project: the code must come from the archive
    elsewhere.mkdir()
    src = f"{project / shape}.py:{shape}"
    kfp_env = _env(tmp_path, "kfp")
    out = tmp_path / f"{shape}.yaml"
    compiled = _run(
        [sys.executable, "-m", "zenml_bridge", "compile", src, "--target", "kubeflow",
         "--executor", "lightweight", "--out", str(out), *_params_args(compile_params)],
        kfp_env, tmp_path,
    )  # fmt: skip
    assert "code archive" in compiled.stdout
    runner = tmp_path / "run_kfp.py"
    runner.write_text(KFP_RUNNER, encoding="utf-8")
    kfp_root = tmp_path / "kfp_root"
    _run(
        [sys.executable, str(runner), str(out), str(kfp_root), json.dumps(run_params)],
        kfp_env, elsewhere,
    )  # fmt: skip

    local_env = _env(tmp_path, "local")
    _run(
        [sys.executable, "-m", "zenml_bridge", "run", src,
         *_params_args({**compile_params, **run_params})],
        local_env, elsewhere,
    )  # fmt: skip

    kfp_run, kfp_hashes = _hashes(tmp_path / "kfp.db")
    local_run, local_hashes = _hashes(tmp_path / "local.db")
    assert kfp_hashes == local_hashes
    assert kfp_run["status"] == "completed" and kfp_run["backend"] == "kubeflow"
    assert kfp_run["run_id"].startswith("kfp-")
    assert kfp_run["parameters"] == local_run["parameters"]
    assert kfp_run["code_archive_sha256"]

    # KFP's own artifacts carry our URIs and content hashes.
    carried: dict[str, dict[str, str]] = {}
    for output_file in kfp_root.glob("*/*/executor_output.json"):
        task = output_file.parent.name
        for name, listed in json.loads(output_file.read_text()).get("artifacts", {}).items():
            artifact = listed["artifacts"][0]
            if name == "step_metrics":  # the step's logged metrics (none in these pipelines)
                assert artifact["metadata"] == {}
                continue
            carried.setdefault(task, {})[name] = artifact["metadata"]["sha256"]
            pointer = json.loads(Path(artifact["uri"]).read_text())
            assert pointer["sha256"] == artifact["metadata"]["sha256"]
            assert Path(pointer["uri"]).is_dir()
    # Scalar outputs are KFP output parameters; every other output is a KFP artifact.
    spec = next(yaml.safe_load_all(out.read_text()))
    declared = {
        name.removeprefix("comp-"): set(c["outputDefinitions"].get("artifacts", {}))
        - {"step_metrics"}
        for name, c in spec["components"].items()
    }
    expected = {
        k.replace("_", "-"): {o: h for o, h in v.items() if o in declared[k.replace("_", "-")]}
        for k, v in kfp_hashes.items()
    }
    assert carried == {k: v for k, v in expected.items() if v}


def test_a_task_finds_inputs_that_kfp_served_from_its_own_cache(tmp_path: Path) -> None:
    """KFP skips a cached upstream task, so this run has no record of it: the task reads the
    upstream artifact from the KFP input artifact's metadata instead."""
    import yaml

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(GOLDEN_DIR / "pipelines" / "linear.py", project / "linear.py")
    env = _env(tmp_path, "kfp")
    out = tmp_path / "linear.yaml"
    _run(
        [sys.executable, "-m", "zenml_bridge", "compile", f"{project}/linear.py:linear",
         "--target", "kubeflow", "--executor", "lightweight", "--out", str(out)],
        env, tmp_path,
    )  # fmt: skip
    runner = tmp_path / "run_kfp.py"
    runner.write_text(KFP_RUNNER, encoding="utf-8")
    _run([sys.executable, str(runner), str(out), str(tmp_path / "kfp_root"), "{}"], env, tmp_path)
    (double_output,) = (tmp_path / "kfp_root").glob("*/double/executor_output.json")
    upstream = json.loads(double_output.read_text())["artifacts"]["output"]["artifacts"][0]

    spec = next(yaml.safe_load_all(out.read_text()))
    args = spec["deploymentSpec"]["executors"]["exec-total"]["container"]["args"]
    argv = json.loads(args[args.index("--zenml-bridge-run-step") + 1])
    argv[argv.index("--run-id") + 1] = "kfp-second-run"
    task_root = tmp_path / "second" / "total"
    executor_input = {
        "inputs": {"artifacts": {"values": {"artifacts": [upstream]}}},
        "outputs": {
            "artifacts": {
                "output": {
                    "artifacts": [
                        {"name": "output", "type": {"schemaTitle": "system.Artifact"},
                         "uri": str(task_root / "output"), "metadata": {}}
                    ]
                }
            },
            "outputFile": str(task_root / "executor_output.json"),
        },
    }  # fmt: skip
    _run(
        [sys.executable, "-m", "zenml_bridge.entrypoint", "run-step", *argv,
         "--kfp-executor-input", json.dumps(executor_input)],
        env, tmp_path,
    )  # fmt: skip
    store = MetadataStore(env["ZENML_BRIDGE_METADATA_URL"])
    first = next(r["run_id"] for r in store.list_runs() if r["run_id"] != "kfp-second-run")
    second = store.step_runs("kfp-second-run")
    assert set(second) == {"total"}  # double never ran in the second run
    expected = store.step_runs(first)["total"]["outputs"]["output"]["sha256"]
    assert second["total"]["outputs"]["output"]["sha256"] == expected
    written = json.loads((task_root / "executor_output.json").read_text())
    assert written["artifacts"]["output"]["artifacts"][0]["metadata"]["sha256"] == expected


KFP_CACHING_RUNNER = """
import sys
from kfp import components, local
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2],
           enable_caching=True)
pipeline = components.load_component_from_file(sys.argv[1])
pipeline()
pipeline()
"""


def test_with_kfp_local_caching_no_run_is_left_running(tmp_path: Path) -> None:
    """Issue 11, item 6: with KFP's cache on, a task KFP served from its cache never ran in
    the new run, which then stayed ``running``. kfp.local's cache key leaves out the run uuid
    (the backend's keeps it: test_kubeflow_backend.py), so it serves the whole second run from
    its cache: no task runs, no run is begun, none is left ``running``; the compile warns."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(GOLDEN_DIR / "pipelines" / "linear.py", project / "linear.py")
    env = _env(tmp_path, "kfp")
    out = tmp_path / "linear.yaml"
    compiled = _run(
        [sys.executable, "-m", "zenml_bridge", "compile", f"{project}/linear.py:linear",
         "--target", "kubeflow", "--executor", "lightweight", "--kfp-caching", "on",
         "--out", str(out)],
        env, tmp_path,
    )  # fmt: skip
    assert "warning: the pipeline, kfp_caching: kfp.local's cache key" in compiled.stdout
    runner = tmp_path / "run_kfp.py"
    runner.write_text(KFP_CACHING_RUNNER, encoding="utf-8")
    _run([sys.executable, str(runner), str(out), str(tmp_path / "kfp_root")], env, tmp_path)
    store = MetadataStore(env["ZENML_BRIDGE_METADATA_URL"])
    (run,) = store.list_runs()
    assert run["status"] == "completed" and len(store.step_runs(run["run_id"])) == 3
