"""A KFP artifact pointer is never trusted blindly (issue 9, item 13).

Anyone who can edit KFP's metadata (MLMD) can write the pointer our tasks read for upstream
tasks KFP served from its own cache. A pointer naming a pickle must not be loaded for a step
that did not opt in (``allow_pickle``), and any pointer must match the metadata store's record.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zenml_bridge import ir
from zenml_bridge.materializers.pickles import PickleMaterializer
from zenml_bridge.runtime import kfp_io
from zenml_bridge.stores.artifacts import ArtifactStore
from zenml_bridge.stores.metadata import MetadataStore

PIPELINE = """
from zenml_bridge import pipeline, step

@step
def make() -> list[int]:
    return [1, 2, 3]

@step
def use(values: list[int]) -> int:
    return sum(values)

@pipeline
def pointers() -> None:
    use(make())
"""


class Payload:
    """Unpickling this creates a marker file: proof that the pickle was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'kfp.db'}",
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ZENML_BRIDGE_HOME": str(tmp_path / "home"),
        "ZENML_BRIDGE_CODE_CACHE": str(tmp_path / "code_cache"),
    }


def _compiled(tmp_path: Path, env: dict[str, str]) -> list[str]:
    import yaml

    project = tmp_path / "project"
    project.mkdir()
    (project / "pointers.py").write_text(PIPELINE, encoding="utf-8")
    out = tmp_path / "p.yaml"
    subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "compile", f"{project}/pointers.py:pointers",
         "--target", "kubeflow", "--image", "ghcr.io/x/zb:1", "--out", str(out)],
        env=env, cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    spec = next(yaml.safe_load_all(out.read_text()))
    args = spec["deploymentSpec"]["executors"]["exec-use"]["container"]["args"]
    args = args[: args.index("--kfp-executor-input")]
    args[args.index("--run-id") + 1] = "kfp-pointer-run"
    return args


def _executor_input(tmp_path: Path, pointer: dict[str, Any]) -> str:
    root = tmp_path / "task"
    return json.dumps(
        {
            "inputs": {
                "parameterValues": {"zenml_bridge_run_uuid": "pointer-run"},
                "artifacts": {
                    "values": {
                        "artifacts": [
                            {
                                "name": "output",
                                "uri": "s3://b/x",
                                "metadata": {"zenml_bridge": pointer},
                            }
                        ]
                    }  # fmt: skip
                },
            },
            "outputs": {
                "parameters": {"output": {"outputFile": str(root / "output")}},
                "outputFile": str(root / "executor_output.json"),
            },
        }
    )


def _pickle_pointer(tmp_path: Path, marker: Path) -> dict[str, Any]:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    materializer = PickleMaterializer()
    uri, sha, _ = store.write(
        "pointers", "elsewhere", "make", "output",
        lambda folder, fs: materializer.save(Payload(str(marker)), folder, fs),
    )  # fmt: skip
    return {"id": "forged", "uri": uri, "sha256": sha, "materializer": "builtins.pickle",
            "version": "1", "type": "builtins.list"}  # fmt: skip


def test_a_pickle_pointer_is_refused_for_a_step_without_allow_pickle(tmp_path: Path) -> None:
    env = _env(tmp_path)
    args = _compiled(tmp_path, env)
    marker = tmp_path / "payload-ran"
    pointer = _pickle_pointer(tmp_path, marker)
    done = subprocess.run(
        [sys.executable, "-m", "zenml_bridge.entrypoint", *args,
         "--kfp-executor-input", _executor_input(tmp_path, pointer)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "points at a pickle (builtins.pickle)" in done.stderr
    assert "@step(allow_pickle=True)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not marker.exists()  # the payload never ran
    run = MetadataStore(env["ZENML_BRIDGE_METADATA_URL"]).get_run("kfp-pointer-run")
    assert run is not None and run["status"] == "failed"  # never left running


def _step(allow_pickle: bool = False) -> ir.Step:
    return ir.Step(
        name="use", source="m:use", source_file="m.py", source_line=1, code_hash="0" * 64,
        inputs=(ir.InputRef.of_output("values", "make", "output"),), allow_pickle=allow_pickle,
    )  # fmt: skip


def test_a_pointer_must_match_the_metadata_store(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    pointer = {"id": "nope", "uri": "/a", "sha256": "ab" * 32, "materializer": "builtins.json",
               "version": "1", "type": "builtins.list"}  # fmt: skip
    data = json.loads(_executor_input(tmp_path, pointer))
    with pytest.raises(ir.BridgeError, match=re.escape("(no such artifact)")):
        kfp_io.read_upstream(data, _step(), store)


def test_a_pointer_matching_its_record_is_used(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    store.begin_run(run_id="r", pipeline="p", ir_sha256="0" * 64, ir_json=lambda: "{}",
                    parameters={})  # fmt: skip
    info = {"id": "a1", "uri": "/store/a1", "sha256": "cd" * 32, "materializer": "builtins.json",
            "version": "1", "type": "builtins.list", "size": 3}  # fmt: skip
    row = {"artifact_id": "a1", "run_id": "r", "step": "make", "output": "output",
           "uri": info["uri"], "content_sha256": info["sha256"], "materializer": "builtins.json",
           "materializer_version": "1", "type_name": "builtins.list", "size": 3,
           "created_at": 1.0}  # fmt: skip
    store.record_step(run_id="r", step="make", status="completed", outputs={"output": info},
                      new_artifacts=[row], parameters={}, started_at=1.0, ended_at=2.0)  # fmt: skip
    pointer = {k: info[k] for k in kfp_io.POINTER_FIELDS}
    data = json.loads(_executor_input(tmp_path, pointer))
    assert kfp_io.read_upstream(data, _step(), store) == {"make": {"output": pointer}}
    forged = {**pointer, "sha256": "ef" * 32}
    with pytest.raises(ir.BridgeError, match=re.escape("(uri, hash or materializer differ)")):
        kfp_io.read_upstream(json.loads(_executor_input(tmp_path, forged)), _step(), store)


def test_a_pickle_pointer_is_used_when_the_step_opted_in(tmp_path: Path) -> None:
    pointer = {"id": "p", "uri": "/a", "sha256": "ab" * 32, "materializer": "builtins.pickle",
               "version": "1", "type": "builtins.object"}  # fmt: skip
    data = json.loads(_executor_input(tmp_path, pointer))
    with pytest.raises(ir.BridgeError, match="did not opt in"):
        kfp_io.read_upstream(data, _step(), None)
    assert kfp_io.read_upstream(data, _step(allow_pickle=True), None) == {
        "make": {"output": pointer}
    }
