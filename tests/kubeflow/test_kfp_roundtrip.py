"""Our YAML as a component of a user's own kfp pipeline: loaded, compiled again, run.

``kfp.components.load_component_from_file`` turns the compiled pipeline into a component whose
outputs are every step's outputs (``<step>__<output>``): scalar outputs as KFP output
parameters an outer pipeline can branch on with ``dsl.If``, the others as typed artifacts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kfp_support import GOLDEN_DIR

from zenml_bridge.stores.metadata import MetadataStore

pytestmark = pytest.mark.slow

OUTER = """
import json, sys
from kfp import compiler, components, dsl, local

inner = components.load_component_from_file(sys.argv[1])


@dsl.component(base_image="python:3.11")
def report(total: int, values: dsl.Input[dsl.Artifact]):
    import json
    uri = json.loads(open(values.path).read())["uri"]
    print("RESULT=" + json.dumps(f"{total}:{values.metadata['sha256']}:{uri}"), flush=True)


@dsl.component(base_image="python:3.11")
def never(total: int):
    print("NEVER-RAN", flush=True)


@dsl.component(base_image="python:3.11")
def gate(total: int) -> int:
    return total


@dsl.pipeline(name="direct")
def direct():
    # dsl.If straight on our output parameter: compiled (kfp.local cannot run this form for
    # ANY nested pipeline's named output, kfp SDK's own included; a real backend can).
    task = inner()
    with dsl.If(task.outputs["total__output"] > 10):
        report(total=task.outputs["total__output"], values=task.outputs["double__output"])


compiler.Compiler().compile(direct, sys.argv[2] + ".direct.yaml")


@dsl.pipeline(name="outer")
def outer():
    task = inner()
    checked = gate(total=task.outputs["total__output"])
    with dsl.If(checked.output > 10):
        report(total=task.outputs["total__output"], values=task.outputs["double__output"])
    with dsl.If(checked.output > 1000):
        never(total=task.outputs["total__output"])


compiler.Compiler().compile(outer, sys.argv[2])
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[3])
loaded = components.load_component_from_file(sys.argv[2])
loaded()
"""


def test_the_yaml_is_a_component_of_a_users_kfp_pipeline(tmp_path: Path) -> None:
    import yaml

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(GOLDEN_DIR / "pipelines" / "linear.py", project / "linear.py")
    env = {
        **os.environ,
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'kfp.db'}",
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ZENML_BRIDGE_HOME": str(tmp_path / "home"),
        "ZENML_BRIDGE_CODE_CACHE": str(tmp_path / "code_cache"),
    }
    inner = tmp_path / "linear.yaml"
    subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "compile", f"{project}/linear.py:linear",
         "--target", "kubeflow", "--executor", "lightweight", "--out", str(inner)],
        env=env, cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    script = tmp_path / "outer.py"
    script.write_text(OUTER, encoding="utf-8")
    outer = tmp_path / "outer.yaml"
    done = subprocess.run(
        [sys.executable, str(script), str(inner), str(outer), str(tmp_path / "kfp_root")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    logs = done.stdout + done.stderr
    found = re.search(r'RESULT=("[^"]*")', logs)
    assert found, logs[-5000:]
    result = json.loads(found.group(1))

    store = MetadataStore(env["ZENML_BRIDGE_METADATA_URL"])
    (run,) = store.list_runs()
    assert run["status"] == "completed"
    steps = store.step_runs(run["run_id"])
    double = steps["double"]["outputs"]["output"]
    # total = 2 * (0 + ... + 9) = 90 > 10: the outer pipeline branched on our output parameter
    # and read our artifact pointer; the > 1000 branch did not run.
    assert result == f"90:{double['sha256']}:{double['uri']}"
    assert "NEVER-RAN" not in logs

    # The outer spec embeds our tasks with their typed outputs.
    spec = next(yaml.safe_load_all(outer.read_text()))
    outputs = spec["components"]["comp-linear"]["outputDefinitions"]
    assert outputs["parameters"]["total__output"] == {"parameterType": "NUMBER_INTEGER"}
    assert "double__output" in outputs["artifacts"]
    direct = next(yaml.safe_load_all(Path(f"{outer}.direct.yaml").read_text()))
    condition = json.dumps(direct["root"]["dag"]["tasks"])
    assert "pipelinechannel--linear-total__output" in condition
