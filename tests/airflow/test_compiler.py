"""The Airflow compiler without Airflow: golden files, checks, errors and the file's shape."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from golden_support import SHAPES, check_golden, shape_pipeline
from support import COMPONENTS, compile_to, data_of, make_pipeline, make_step, options_for

from zenml_bridge import ir
from zenml_bridge.compilers.airflow import AirflowCompiler, render, template_text
from zenml_bridge.compilers.base import UnsupportedError

#: The operator profile (and image, -p values) each golden shape is compiled with.
GOLDEN_OPTIONS = {
    "linear": {
        "archive": True,
        "extra": {"python": "/opt/zenml-bridge/bin/python"},
        **COMPONENTS,
    },
    "fan_out_in": {},
    "diamond": {"archive": True},
    "multi_output": {"operator": "docker", "image": "ghcr.io/acme/steps:1.4"},
    "params": {
        "operator": "kubernetes",
        "image": "ghcr.io/acme/steps:1.4",
        "archive": True,
        "parameters": {"rows": 50},
        **COMPONENTS,
    },
}
# importlib: callbacks named `module:function` are imported when called, never at parse time.
ALLOWED_IMPORTS = {"__future__", "datetime", "hashlib", "importlib", "inspect", "json", "re", "sys"}


@pytest.mark.parametrize("shape", SHAPES)
def test_generated_dag_matches_golden(shape: str, tmp_path: Path) -> None:
    pipeline = shape_pipeline(shape).to_ir()
    result, text = compile_to(pipeline, tmp_path, **GOLDEN_OPTIONS[shape])
    assert result.paths == (tmp_path / f"zenml_bridge__{shape}.py",)
    check_golden(f"airflow/{shape}.py", text)


@pytest.mark.parametrize("shape", SHAPES)
def test_generated_file_is_template_plus_one_literal(shape: str, tmp_path: Path) -> None:
    pipeline = shape_pipeline(shape).to_ir()
    _, text = compile_to(pipeline, tmp_path, **GOLDEN_OPTIONS[shape])
    data = data_of(text)
    assert [s["name"] for s in data["steps"]] == list(pipeline.step_names)
    assert {s["name"]: s["upstream"] for s in data["steps"]} == {
        s.name: list(s.upstream) for s in pipeline.steps
    }
    assert data["ir_sha256"] == ir.sha256(pipeline)


def test_template_imports_nothing_of_ours_and_no_deprecated_names() -> None:
    source = template_text()
    tree = ast.parse(source)
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module or "")
    assert not [m for m in modules if m.startswith("zenml_bridge")]
    top = {m.split(".")[0] for m in modules}
    assert top <= ALLOWED_IMPORTS | {"airflow", "kubernetes", "docker"}, top
    for name in ("schedule_interval", "days_ago", "open(", "os.environ", "Variable"):
        assert name not in source
    # Module level: imports, constants, functions and the one call that builds the DAG.
    calls = [
        n
        for n in tree.body
        if not isinstance(n, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.Try | ast.Expr)
    ]
    assert [ast.unparse(n) for n in calls if "build_dag" in ast.unparse(n)] == ["dag = build_dag()"]


def test_every_problem_is_reported_at_once_with_step_and_setting(tmp_path: Path) -> None:
    pipeline = make_pipeline(
        make_step("train", image="repo/img:1", resources=ir.Resources(cpu="2", memory="4Gi")),
        make_step("score", ("train",), resources=ir.Resources(gpu=1)),
        schedule="every day",
    )
    with pytest.raises(UnsupportedError) as caught:
        AirflowCompiler().compile(pipeline, options_for(pipeline, tmp_path))
    message = str(caught.value)
    assert "Cannot compile for airflow: 5 problem(s)." in message
    for where in (
        "step 'train', image",
        "step 'train', cpu",
        "step 'train', memory",
        "step 'score', gpu",
        "the pipeline, schedule",
    ):
        assert f"error: {where}:" in message
    assert "--operator kubernetes or --operator docker" in message
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("operator", ["kubernetes", "docker"])
def test_container_profiles_need_an_image(operator: str, tmp_path: Path) -> None:
    pipeline = make_pipeline(make_step("a"))
    with pytest.raises(UnsupportedError, match=re.escape("error: step 'a', image: the")):
        AirflowCompiler().compile(pipeline, options_for(pipeline, tmp_path, operator=operator))
    result, text = compile_to(pipeline, tmp_path, operator=operator, image="img:1")
    assert data_of(text)["steps"][0]["image"] == "img:1"


def test_invalid_quantity_is_an_error(tmp_path: Path) -> None:
    pipeline = make_pipeline(make_step("a", resources=ir.Resources(memory="lots")))
    with pytest.raises(UnsupportedError, match=re.escape("step 'a', memory: 'lots' is not a")):
        AirflowCompiler().compile(
            pipeline, options_for(pipeline, tmp_path, operator="docker", image="i")
        )


@pytest.mark.parametrize("operator", ["kubernetes", "docker"])
def test_every_kubernetes_quantity_is_accepted(operator: str, tmp_path: Path) -> None:
    # Kubernetes' own grammar (the same check as the Kubeflow target): ".5" and "1e3" included.
    step = make_step("a", resources=ir.Resources(cpu=".5", memory="1e3"))
    _, text = compile_to(make_pipeline(step), tmp_path, operator=operator, image="i")
    resources = data_of(text)["steps"][0]["resources"]
    if operator == "docker":
        assert (resources["cpus"], resources["mem_limit"]) == (0.5, 1000)
    else:
        assert resources["requests"] == {"cpu": ".5", "memory": "1e3"}


def test_docker_resources_are_converted(tmp_path: Path) -> None:
    step = make_step("a", resources=ir.Resources(cpu="500m", memory="1Gi", gpu=2))
    _, text = compile_to(make_pipeline(step), tmp_path, operator="docker", image="i")
    resources = data_of(text)["steps"][0]["resources"]
    assert resources == {"cpus": 0.5, "mem_limit": 2**30, "gpus": 2}


def test_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    step = make_step("a", retry=ir.RetryPolicy(max_retries=2, backoff_factor=3.0))
    pipeline = make_pipeline(step)
    result, text = compile_to(pipeline, tmp_path)
    assert [(w.severity, w.step, w.setting) for w in result.warnings] == [
        ("warning", "a", "retry_backoff")
    ]
    assert data_of(text)["steps"][0]["retry_backoff"] == 3.0
    with pytest.raises(UnsupportedError, match=re.escape("warning: step 'a', retry_backoff")):
        AirflowCompiler().compile(pipeline, options_for(pipeline, tmp_path / "s", strict=True))
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("schedule", ["@daily", "@once", "0 6 * * 1-5", "*/15 * * * *"])
def test_schedules_that_airflow_takes(schedule: str, tmp_path: Path) -> None:
    _, text = compile_to(make_pipeline(schedule=schedule), tmp_path)
    assert data_of(text)["schedule"] == schedule


def test_unknown_settings_get_did_you_mean(tmp_path: Path) -> None:
    pipeline = make_pipeline(
        make_step("a", settings={"airflow": {"pol": "x", "namespace": "ml"}}),
        settings={"airflow": {"tag": ["x"], "max_active_runs": "1", "env_from_secret": "A_B"}},
    )
    with pytest.raises(UnsupportedError) as caught:
        AirflowCompiler().compile(pipeline, options_for(pipeline, tmp_path))
    message = str(caught.value)
    assert "step 'a', settings.airflow.pol: unknown Airflow setting. Did you mean 'pool'?" in (
        message
    )
    assert "step 'a', settings.airflow.namespace: only the kubernetes profile takes it" in message
    assert "the pipeline, settings.airflow.tag: unknown Airflow setting. Did you mean 'tags'?" in (
        message
    )
    assert "settings.airflow.max_active_runs: must be int, got '1'" in message
    assert "the pipeline, settings.airflow.env_from_secret: only the kubernetes" in message


def test_settings_reach_the_dag(tmp_path: Path) -> None:
    pipeline = make_pipeline(
        make_step("a", settings={"airflow": {"pool": "gpu", "namespace": "ml"}}),
        make_step("b", ("a",)),
        settings={
            "airflow": {
                "tags": ["team-a"],
                "max_active_runs": 1,
                "namespace": "default-ns",
                "env_from_secret": "zenml-bridge-stores",
            }
        },
    )
    _, text = compile_to(pipeline, tmp_path, operator="kubernetes", image="i")
    data = data_of(text)
    assert data["tags"] == ["zenml-bridge", "team-a"]
    assert data["dag_settings"] == {"max_active_runs": 1}
    # Task settings of the pipeline are defaults of every task; a step's own win.
    assert data["steps"][0]["settings"] == {
        "namespace": "ml",
        "env_from_secret": "zenml-bridge-stores",
        "pool": "gpu",
    }
    assert data["steps"][1]["settings"] == {
        "namespace": "default-ns",
        "env_from_secret": "zenml-bridge-stores",
    }
    bad = make_pipeline(settings={"airflow": {"env_from_secret": "Not A Name"}})
    with pytest.raises(UnsupportedError, match="env_from_secret: must be k8s name"):
        AirflowCompiler().compile(bad, options_for(bad, tmp_path, operator="kubernetes", image="i"))


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    pipeline = make_pipeline()
    with pytest.raises(ir.BridgeError, match="must be the Airflow dags folder"):
        AirflowCompiler().compile(pipeline, options_for(pipeline, tmp_path / "dag.py"))


def test_unwritable_out_is_a_bridge_error(tmp_path: Path) -> None:
    pipeline = make_pipeline()
    with pytest.raises(ir.BridgeError, match="Cannot write into /proc/dags"):
        AirflowCompiler().compile(pipeline, options_for(pipeline, Path("/proc/dags")))


def test_store_url_with_a_password_is_refused(tmp_path: Path) -> None:
    pipeline = make_pipeline()
    url = "postgresql+psycopg://zb:s3cret@db/zb"
    with pytest.raises(ir.BridgeError, match="metadata_url contains a password") as caught:
        AirflowCompiler().compile(pipeline, options_for(pipeline, tmp_path, metadata_url=url))
    assert "s3cret" not in str(caught.value)
    assert "env_from_secret" in str(caught.value)
    assert list(tmp_path.iterdir()) == []
    _, text = compile_to(pipeline, tmp_path, metadata_url="postgresql+psycopg://zb@db/zb")
    assert data_of(text)["stores"] == {
        "metadata_url": "postgresql+psycopg://zb@db/zb",
        "artifact_root": None,
    }


def test_ir_uri_is_required(tmp_path: Path) -> None:
    pipeline = make_pipeline()
    options = dataclasses.replace(options_for(pipeline, tmp_path), ir_uri=None)
    with pytest.raises(UnsupportedError, match="the pipeline, ir_uri: workers read the IR"):
        AirflowCompiler().compile(pipeline, options)


def test_compile_time_parameters_become_param_defaults(tmp_path: Path) -> None:
    pipeline = shape_pipeline("params").to_ir()
    _, text = compile_to(
        pipeline, tmp_path, operator="kubernetes", image="i", parameters={"rows": 7}
    )
    data = data_of(text)
    params = {p["name"]: (p["default"], p["schema_type"]) for p in data["parameters"]}
    assert params["rows"] == (7, "integer")
    assert params["weights"] == ([0.5, 0.5], "array")
    assert params["label"] == ('it\'s "quoted"', "string")
    # Workers load the IR as it was published, not the compile-time defaults.
    assert data["ir_sha256"] == ir.sha256(pipeline)


def test_rewrite_replaces_the_file_atomically(tmp_path: Path) -> None:
    pipeline = make_pipeline()
    target = tmp_path / "zenml_bridge__demo.py"
    target.write_text("old", encoding="utf-8")
    compile_to(pipeline, tmp_path)
    assert target.read_text(encoding="utf-8").startswith('"""Airflow DAG generated by zenml')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zenml_bridge__demo.py"]


def test_render_refuses_data_without_a_literal() -> None:
    with pytest.raises(TypeError):
        render({"steps": [object()]})


# -- the CLI ---------------------------------------------------------------------------------


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'metadata.db'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "compile", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_cli_publishes_ir_and_code_then_writes_the_dag(tmp_path: Path) -> None:
    src = f"{Path(__file__).parent / 'flows' / 'shop.py'}:shop"
    result = _cli(tmp_path, src, "--target", "airflow", "--out", str(tmp_path / "dags"))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "dags" / "zenml_bridge__shop.py"
    assert f"wrote {path}" in result.stdout
    data = data_of(path.read_text(encoding="utf-8"))
    ir_file = Path(data["ir_uri"])
    assert ir_file == tmp_path / "artifacts" / ".zenml_bridge" / "ir" / f"{data['ir_sha256']}.json"
    assert ir.sha256(ir.loads(ir_file.read_text(encoding="utf-8"))) == data["ir_sha256"]
    archive = Path(data["code_archive_uri"])
    assert archive.parent == tmp_path / "artifacts" / ".zenml_bridge" / "code"
    assert archive.name == f"{data['code_archive_sha256']}.tar.gz"
    assert data["python"] is None

    again = _cli(tmp_path, src, "--target", "airflow", "--out", str(tmp_path / "dags2"))
    assert again.returncode == 0, again.stderr
    data2 = data_of((tmp_path / "dags2" / "zenml_bridge__shop.py").read_text(encoding="utf-8"))
    assert data2["code_archive_sha256"] == data["code_archive_sha256"]  # deterministic archive

    bare = _cli(
        tmp_path, src, "--target", "airflow", "--out", str(tmp_path / "d3"), "--no-code-archive",
        "--python", "/opt/zb/bin/python",
    )  # fmt: skip
    assert bare.returncode == 0, bare.stderr
    data3 = data_of((tmp_path / "d3" / "zenml_bridge__shop.py").read_text(encoding="utf-8"))
    assert (data3["code_archive_uri"], data3["python"]) == (None, "/opt/zb/bin/python")


def test_cli_reports_unsupported_settings_and_writes_nothing(tmp_path: Path) -> None:
    src = f"{Path(__file__).parent.parent / 'golden' / 'pipelines' / 'params.py'}:params"
    result = _cli(tmp_path, src, "--target", "airflow", "--out", str(tmp_path / "dags"))
    assert result.returncode == 2
    assert "error: step 'generate', cpu: the bash profile cannot reserve '500m'" in result.stderr
    assert "error: step 'generate', memory:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "dags").exists()
    assert not (tmp_path / "artifacts").exists()  # refused before the IR was stored


def test_cli_checks_once_and_publishes_only_what_can_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml_bridge.cli.main import main

    checked = []
    real_check = AirflowCompiler.check

    def counted(self: AirflowCompiler, *args: object) -> object:
        checked.append(1)
        return real_check(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(AirflowCompiler, "check", counted)
    monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", f"sqlite:///{tmp_path / 'metadata.db'}")
    monkeypatch.chdir(tmp_path)
    src = f"{Path(__file__).parent / 'flows' / 'shop.py'}:shop"
    assert main(["compile", src, "--target", "airflow", "--out", str(tmp_path / "dags")]) == 0
    assert len(checked) == 1
    assert (tmp_path / "dags" / "zenml_bridge__shop.py").is_file()


def test_cli_dag_parameters_are_json_values(tmp_path: Path) -> None:
    src = f"{Path(__file__).parent / 'flows' / 'shop.py'}:shop"
    out = tmp_path / "dags"
    result = _cli(tmp_path, src, "--target", "airflow", "--out", str(out), "-p", "rows=3")
    assert result.returncode == 0, result.stderr
    data = data_of((out / "zenml_bridge__shop.py").read_text(encoding="utf-8"))
    assert json.dumps(data["parameters"][0]) == json.dumps(
        {
            "name": "rows",
            "type": "int",
            "default": 3,
            "required": False,
            "schema_type": "integer",
            "description": "",
        }
    )
