"""examples/ and templates: run end to end, compiled for Airflow and Kubeflow.

The e2e example's integration steps run with whatever is installed (``tox -e examples`` has
Great Expectations, Evidently, MLflow and BentoML); ``E2E_TRAINING_SKIP`` makes the example
treat installed ones as missing, to check the notes.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, Shell

QUICKSTART = f"{EXAMPLES / 'quickstart' / 'pipeline.py'}:training"
E2E = f"{EXAMPLES / 'e2e_training' / 'pipeline.py'}:e2e_training"
INTEGRATIONS = ("great_expectations", "evidently", "mlflow", "bentoml")


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run_id(out: str) -> str:
    found = re.search(r"Run (\S+) (completed|stopped|failed)", out)
    assert found, out
    return found.group(1)


def test_quickstart_then_where_to_look_next(shell: Shell) -> None:
    out = shell.cli("run", QUICKSTART, "-p", "rows=200").stdout
    first = run_id(out)
    hints = shell.run(str(EXAMPLES / "quickstart" / "next_steps.py")).stdout
    assert f"zenml-bridge runs show {first}" in hints
    for text in ("--target airflow", "--target kubeflow", "zenml-bridge dashboard", "runs compare"):
        assert text in hints


def test_e2e_training_with_the_installed_integrations(shell: Shell) -> None:
    out = shell.cli("run", E2E).stdout
    passed = run_id(out)
    assert f"Run {passed} completed" in out
    shown = json.loads(shell.cli("runs", "show", passed, "--json").stdout)
    steps = {s["step"]: s for s in shown["steps"]}
    assert all(s["status"] == "completed" for s in steps.values()), steps
    assert steps["evaluate"]["metrics"]["accuracy"] > 0.9
    artifacts = {
        f"{s['step']}.{name}": info for s in shown["steps"] for name, info in s["outputs"].items()
    }

    def value(name: str) -> object:
        from zenml_bridge.runtime.records import ArtifactRecord

        return ArtifactRecord.from_info(artifacts[name]).load()

    validation = value("validate.validation")
    tracking = value("track.tracking")
    deployment = value("deploy.deployment")
    report = str(value("drift_report.drift_report"))
    if installed("great_expectations"):
        assert validation["success"] is True and validation["checks"] == 10  # type: ignore[index]
    else:
        assert validation["skipped"] is True  # type: ignore[index]
    if installed("evidently"):
        assert report.lower().lstrip().startswith("<!doctype html>") and len(report) > 10_000
        assert "mean radius" in report  # a column of the report
        assert 0 <= steps["drift_report"]["metrics"]["drift_share"] <= 1
    if installed("mlflow"):
        with sqlite3.connect(shell.root / "mlflow.db") as db:
            (status,) = db.execute(
                "select status from runs where run_uuid = ?",
                (tracking["mlflow_run_id"],),  # type: ignore[index]
            ).fetchone()
        assert status == "FINISHED"
    if installed("bentoml"):
        tag = deployment["bentoml_model"]  # type: ignore[index]
        name, version = tag.split(":")
        assert (shell.root / "bentoml" / "models" / name / version / "model.yaml").is_file()
    # The accuracy bar: the same data and model, a bar it cannot clear -> stopped, no deploy.
    out = shell.cli("run", E2E, "-p", "min_accuracy=0.999").stdout
    stopped = run_id(out)
    assert f"Run {stopped} stopped" in out
    shown = json.loads(shell.cli("runs", "show", stopped, "--json").stdout)
    states = {s["step"]: s["status"] for s in shown["steps"]}
    assert states["gate"] == "stopped" and states["deploy"] == "skipped"
    assert states["train"] == states["track"] == "cached"
    compared = json.loads(shell.cli("runs", "compare", passed, stopped, "--json").stdout)
    params = {p["name"]: p for p in compared["parameters"]}
    assert params["min_accuracy"]["values"] == [0.9, 0.999]
    changed = {s["step"]: s["changed"] for s in compared["steps"]}
    assert "status" in changed["deploy"] and changed["train"] == ["status"]


def test_e2e_training_skips_each_missing_integration_with_a_note(shell: Shell) -> None:
    skip = ",".join(INTEGRATIONS)
    out = shell.cli("run", E2E, "--no-cache", E2E_TRAINING_SKIP=skip).stdout
    assert f"Run {run_id(out)} completed" in out
    for what, module in (
        ("Data validation", "great_expectations"),
        ("Drift report", "evidently"),
        ("MLflow tracking", "mlflow"),
        ("Deployment", "bentoml"),
    ):
        assert f"{what} skipped: {module} is not installed" in out, out
    assert not (shell.root / "bentoml").exists() and not (shell.root / "mlflow.db").exists()


SOURCES = {
    "quickstart": QUICKSTART,
    "e2e_training": E2E,
    "minimal": "pipeline.py:hello",
    "sklearn": "pipeline.py:training",
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_compiles_for_airflow_and_kubeflow(shell: Shell, tmp_path: Path, name: str) -> None:
    cwd = tmp_path
    if name in ("minimal", "sklearn"):
        cwd = tmp_path / "proj"
        shell.cli("init", "--template", name, str(cwd))
    src = SOURCES[name]
    dags = tmp_path / "dags"
    shell.cli("compile", src, "--target", "airflow", "--out", str(dags), cwd=cwd)
    (dag,) = dags.glob("zenml_bridge__*.py")
    compile(dag.read_text(encoding="utf-8"), str(dag), "exec")
    if not installed("kfp"):
        pytest.skip("kfp is not installed: the Kubeflow half runs in `tox -e examples`")
    out = tmp_path / f"{name}.yaml"
    shell.cli(
        "compile", src, "--target", "kubeflow", "--image", "registry.local/zb:1", "--out", str(out),
        cwd=cwd,
    )  # fmt: skip
    # kfp's own loader: the YAML is a valid pipeline component with one task per step.
    check = (
        "import sys, yaml; from kfp import components; "
        "c = components.load_component_from_file(sys.argv[1]); "
        "print(sorted(yaml.safe_load(open(sys.argv[1]))['root']['dag']['tasks']))"
    )
    tasks = shell.run("-c", check, str(out)).stdout
    assert "train" in tasks or "summarize" in tasks, tasks


def test_examples_folder_holds_what_the_readme_names() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in ("examples/quickstart/next_steps.py", "examples/e2e_training"):
        assert path in readme and (ROOT / path).exists()


KFP_RUNNER = """
import json, sys
from kfp import components, local
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
components.load_component_from_file(sys.argv[1])(**json.loads(sys.argv[3]))
"""


def test_sklearn_template_runs_with_kfp_local(shell: Shell, tmp_path: Path) -> None:
    """The template's Kubeflow YAML (lightweight executor) run by kfp.local: every task goes
    through KFP's own executor and our entrypoint, recorded in the project's store."""
    if not installed("kfp"):
        pytest.skip("kfp is not installed: run `tox -e examples`")
    project = tmp_path / "proj"
    shell.cli("init", "--template", "sklearn", str(project))
    out = tmp_path / "training.yaml"
    shell.cli(
        "compile", "pipeline.py:training", "--target", "kubeflow", "--executor", "lightweight",
        "--out", str(out), cwd=project,
    )  # fmt: skip
    runner = tmp_path / "run_kfp.py"
    runner.write_text(KFP_RUNNER, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"  # the code comes from the archive, not the project
    elsewhere.mkdir()
    store_url = f"sqlite:///{project / '.zenml_bridge' / 'metadata.db'}"
    shell.run(
        str(runner), str(out), str(tmp_path / "kfp_root"), json.dumps({"C": 0.5}),
        cwd=elsewhere,
        ZENML_BRIDGE_METADATA_URL=store_url,
        ZENML_BRIDGE_ARTIFACT_ROOT=str(project / ".zenml_bridge" / "artifacts"),
    )  # fmt: skip
    from zenml_bridge.stores.metadata import MetadataStore

    store = MetadataStore(store_url)
    (run,) = store.list_runs(pipeline="training")
    assert run["status"] == "completed" and run["backend"] == "kubeflow"
    assert run["parameters"]["C"] == 0.5
    assert store.step_runs(run["run_id"])["evaluate"]["metrics"]["accuracy"] > 0.8
