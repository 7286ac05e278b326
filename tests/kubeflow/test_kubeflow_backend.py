"""The compiled YAML run the way a real KFP 2.x backend runs it (kfp_backend_emulator.py).

Each golden pipeline is compiled by the CLI (container executor), then run twice by the
emulated backend, every task a real ``python -m zenml_bridge.entrypoint`` process with the
arguments the launcher's substitution produced. Each KFP run must record its own run of ours,
complete, with the outputs a local run of the same arguments gives.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp_backend_emulator import BackendEmulator, BackendError
from kfp_support import GOLDEN_DIR

from zenml_bridge.stores.metadata import MetadataStore

pytestmark = pytest.mark.slow

IMAGE = "ghcr.io/example/zenml-bridge:0.1.0"
HOSTILE = 'it\'s "quoted" \\ {{$}} {{$.pipeline_job_uuid}}\nünï'
#: Two runs per golden: different arguments where the pipeline has parameters.
RUNS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "linear": ({}, {}),
    "fan_out_in": ({}, {}),
    "diamond": ({}, {}),
    "multi_output": ({}, {}),
    "params": ({"rows": 5, "label": HOSTILE}, {"rows": 9, "seed": 4, "weights": [1.5, 2.0]}),
}


def _env(tmp_path: Path, name: str) -> dict[str, str]:
    return {
        **os.environ,
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / name}.db",
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / f"{name}_artifacts"),
        "ZENML_BRIDGE_HOME": str(tmp_path / "home"),
        "ZENML_BRIDGE_CODE_CACHE": str(tmp_path / f"{name}_code_cache"),
    }


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"{args[:3]}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _project(tmp_path: Path, shape: str) -> str:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    shutil.copy(GOLDEN_DIR / "pipelines" / f"{shape}.py", project / f"{shape}.py")
    return f"{project / shape}.py:{shape}"


def _compile(tmp_path: Path, src: str, env: dict[str, str], *extra: str) -> str:
    out = tmp_path / "compiled.yaml"
    _cli(["compile", src, "--target", "kubeflow", "--image", IMAGE, "--out", str(out), *extra],
         env, tmp_path)  # fmt: skip
    return out.read_text(encoding="utf-8")


def _hashes(store: MetadataStore, run_id: str) -> dict[str, dict[str, str]]:
    return {
        step: {out: info["sha256"] for out, info in row["outputs"].items()}
        for step, row in store.step_runs(run_id).items()
    }


def _local_hashes(tmp_path: Path, src: str, arguments: dict[str, Any], tag: str) -> Any:
    env = _env(tmp_path, f"local_{tag}")
    params = [a for k, v in arguments.items() for a in ("-p", f"{k}={json.dumps(v)}")]
    _cli(["run", src, *params], env, tmp_path)
    store = MetadataStore(env["ZENML_BRIDGE_METADATA_URL"])
    (run,) = store.list_runs()
    return run, _hashes(store, run["run_id"])


@pytest.mark.parametrize("shape", sorted(RUNS))
def test_each_kfp_run_records_its_own_run_with_the_right_results(
    tmp_path: Path, shape: str
) -> None:
    src = _project(tmp_path, shape)
    env = _env(tmp_path, "kfp")
    text = _compile(tmp_path, src, env)
    elsewhere = tmp_path / "elsewhere"  # not the project: code comes from the archive
    elsewhere.mkdir()
    backend = BackendEmulator(text, tmp_path / "backend", env, elsewhere)
    store = MetadataStore(env["ZENML_BRIDGE_METADATA_URL"])
    seen = []
    for number, arguments in enumerate(RUNS[shape]):
        kfp_run = backend.run(arguments)
        logs = "\n".join(t.logs for t in kfp_run.tasks.values())
        assert kfp_run.state == "SUCCEEDED", logs[-4000:]
        run_id = f"kfp-{kfp_run.run_uuid}"
        run = store.get_run(run_id)
        assert run is not None and run["status"] == "completed", logs[-4000:]
        assert run["backend"] == "kubeflow"
        local_run, expected = _local_hashes(tmp_path, src, arguments, str(number))
        assert _hashes(store, run_id) == expected
        assert run["parameters"] == local_run["parameters"]
        # The launcher substituted the run uuid through the task input, in every task.
        for task in kfp_run.tasks.values():
            assert task.argv[task.argv.index("--run-id") + 1] == run_id
        seen.append(run_id)
    assert len(set(seen)) == 2
    assert {r["run_id"] for r in store.list_runs()} == set(seen)


def test_a_runtime_placeholder_in_args_is_not_substituted_by_the_launcher(tmp_path: Path) -> None:
    """What the old YAML did: ``kfp-{{$.pipeline_job_uuid}}`` in args reaches every run as the
    same literal text, so two runs share one run id and the second one is stale."""
    src = _project(tmp_path, "params")
    env = _env(tmp_path, "kfp")
    spec = next(yaml.safe_load_all(_compile(tmp_path, src, env)))
    for executor in spec["deploymentSpec"]["executors"].values():
        args = executor["container"]["args"]
        args[args.index("--run-id") + 1] = "kfp-{{$.pipeline_job_uuid}}"
    backend = BackendEmulator(yaml.safe_dump(spec), tmp_path / "backend", env, tmp_path)
    first, second = backend.run({"rows": 3}), backend.run({"rows": 4})
    store = MetadataStore(env["ZENML_BRIDGE_METADATA_URL"])
    assert [r["run_id"] for r in store.list_runs()] == ["kfp-{{$.pipeline_job_uuid}}"]
    assert first.state == second.state == "SUCCEEDED"
    assert "is already completed" in second.tasks["generate"].logs  # stale, not rows=4


def test_retries_fire_with_backoff_max_duration_and_not_without(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "flaky.py").write_text(
        "from pathlib import Path\nfrom zenml_bridge import pipeline, step\n\n"
        "@step(retries=2, retry_delay=30)\n"
        "def flaky(marker: str) -> int:\n"
        "    path = Path(marker)\n"
        "    if not path.exists():\n"
        "        path.write_text('failed once')\n"
        "        raise RuntimeError('first attempt fails')\n"
        "    return 7\n\n"
        "@pipeline\n"
        "def flaky_pipeline(marker: str) -> None:\n"
        "    flaky(marker=marker)\n",
        encoding="utf-8",
    )
    env = _env(tmp_path, "kfp")
    text = _compile(tmp_path, f"{project}/flaky.py:flaky_pipeline", env)
    spec = yaml.safe_load(text)
    policy = spec["root"]["dag"]["tasks"]["flaky"]["retryPolicy"]
    assert policy["backoffMaxDuration"] == "3600s"
    backend = BackendEmulator(text, tmp_path / "backend", env, tmp_path)
    run = backend.run({"marker": str(tmp_path / "marker-1")})
    assert run.state == "SUCCEEDED" and run.tasks["flaky"].attempts == 2
    assert run.tasks["flaky"].parameters == {"output": 7}  # an output parameter
    store = MetadataStore(env["ZENML_BRIDGE_METADATA_URL"])
    assert store.get_run(f"kfp-{run.run_uuid}")["status"] == "completed"

    # Without backoffMaxDuration (the old YAML) Argo's maxDuration is "0": no retry at all.
    del spec["root"]["dag"]["tasks"]["flaky"]["retryPolicy"]["backoffMaxDuration"]
    old = BackendEmulator(yaml.safe_dump(spec), tmp_path / "old", env, tmp_path)
    failed = old.run({"marker": str(tmp_path / "marker-2")})
    assert failed.state == "FAILED" and failed.tasks["flaky"].attempts == 1
    assert failed.tasks["flaky"].message == "Backoff would exceed max duration limit"


@pytest.mark.parametrize("caching", ["on", "off"])
def test_kfp_caching_on_or_off_every_run_completes(tmp_path: Path, caching: str) -> None:
    src = _project(tmp_path, "linear")
    env = _env(tmp_path, "kfp")
    text = _compile(tmp_path, src, env, "--kfp-caching", caching)
    tasks = yaml.safe_load(text)["root"]["dag"]["tasks"]
    assert {t["cachingOptions"]["enableCache"] for t in tasks.values()} == {caching == "on"}
    backend = BackendEmulator(text, tmp_path / "backend", env, tmp_path)
    store = MetadataStore(env["ZENML_BRIDGE_METADATA_URL"])
    first, second = backend.run({}), backend.run({})
    for run in (first, second):
        assert run.state == "SUCCEEDED"
        assert store.get_run(f"kfp-{run.run_uuid}")["status"] == "completed"
    # KFP's fingerprint covers the run uuid input, so KFP never serves another run's task:
    # the second run's steps are served by our cache instead, and recorded in that run.
    assert {t.state for t in second.tasks.values()} == {"SUCCEEDED"}
    steps = store.step_runs(f"kfp-{second.run_uuid}")
    assert {row["status"] for row in steps.values()} == {"cached"}
    # A KFP retry of the same run (same uuid) may be served by KFP's cache: still completed.
    again = backend.run({}, run_uuid=first.run_uuid)
    expected = "CACHED" if caching == "on" else "SUCCEEDED"
    assert {t.state for t in again.tasks.values()} == {expected}
    assert store.get_run(f"kfp-{first.run_uuid}")["status"] == "completed"


def test_a_missing_required_argument_is_refused_by_the_api_server(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "req.py").write_text(
        "from zenml_bridge import pipeline, step\n\n@step\ndef use(n: int) -> int:\n"
        "    return n\n\n@pipeline\ndef req(n: int) -> None:\n    use(n=n)\n",
        encoding="utf-8",
    )
    env = _env(tmp_path, "kfp")
    text = _compile(tmp_path, f"{project}/req.py:req", env)
    backend = BackendEmulator(text, tmp_path / "backend", env, tmp_path)
    with pytest.raises(BackendError, match=re.escape("parameter n is not optional")):
        backend.run({})
    assert backend.run({"n": 3}).tasks["use"].parameters == {"output": 3}


TYPED = """
from typing import Annotated

import pandas as pd
from sklearn.linear_model import LogisticRegression

from zenml_bridge import get_step_context, pipeline, step


@step
def load(rows: int = 6) -> Annotated[pd.DataFrame, "frame"]:
    return pd.DataFrame({"x": [float(i) for i in range(rows)], "y": [i % 2 for i in range(rows)]})


@step
def train(frame: pd.DataFrame) -> tuple[
    Annotated[LogisticRegression, "model"], Annotated[float, "accuracy"]
]:
    model = LogisticRegression().fit(frame[["x"]], frame["y"])
    accuracy = float(model.score(frame[["x"]], frame["y"]))
    get_step_context().log_metric("accuracy", accuracy)
    get_step_context().log_metric("rows", len(frame))
    return model, accuracy


@pipeline
def typed(rows: int = 6) -> None:
    train(load(rows=rows))
"""


def test_typed_outputs_output_parameters_and_metrics(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "typed.py").write_text(TYPED, encoding="utf-8")
    env = _env(tmp_path, "kfp")
    text = _compile(tmp_path, f"{project}/typed.py:typed", env)
    spec = yaml.safe_load(text)
    load_out = spec["components"]["comp-load"]["outputDefinitions"]["artifacts"]
    train_out = spec["components"]["comp-train"]["outputDefinitions"]
    assert load_out["frame"]["artifactType"]["schemaTitle"] == "system.Dataset"
    assert train_out["artifacts"]["model"]["artifactType"]["schemaTitle"] == "system.Model"
    assert train_out["artifacts"]["step_metrics"]["artifactType"]["schemaTitle"] == (
        "system.Metrics"
    )
    assert train_out["parameters"] == {"accuracy": {"parameterType": "NUMBER_DOUBLE"}}

    backend = BackendEmulator(text, tmp_path / "backend", env, tmp_path)
    run = backend.run({"rows": 8})
    logs = "\n".join(t.logs for t in run.tasks.values())
    assert run.state == "SUCCEEDED", logs[-4000:]
    train = run.tasks["train"]
    store = MetadataStore(env["ZENML_BRIDGE_METADATA_URL"])
    recorded = store.step_runs(f"kfp-{run.run_uuid}")["train"]
    assert train.artifacts["step_metrics"]["metadata"] == recorded["metrics"]
    assert recorded["metrics"]["rows"] == 8
    assert train.parameters["accuracy"] == recorded["metrics"]["accuracy"]
    assert (
        train.artifacts["model"]["metadata"]["sha256"] == (recorded["outputs"]["model"]["sha256"])
    )
