"""Compile errors before anything is written, DAG settings, parameter descriptions, conf keys.

Each refused compile is checked to leave the dags folder as it was.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import compile_to, data_of, make_pipeline, make_step, options_for

from zenml_bridge import ir, parameter, pipeline, step
from zenml_bridge.compilers.airflow import AirflowCompiler
from zenml_bridge.compilers.airflow_settings import DAG_SETTINGS, dag_id_owner
from zenml_bridge.compilers.base import UnsupportedError
from zenml_bridge.dsl.parameters import parameter_descriptions

FLOWS = Path(__file__).parent / "flows"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


def test_schedule_with_a_required_parameter_is_refused_with_the_fix(tmp_path: Path) -> None:
    pipe = make_pipeline(
        schedule="@daily",
        parameters=(
            ir.Parameter(name="day", type="str", required=True),
            ir.Parameter(name="rows", type="int", default=3),
        ),
    )
    with pytest.raises(UnsupportedError) as caught:
        AirflowCompiler().compile(pipe, options_for(pipe, tmp_path / "dags"))
    assert (
        "error: the pipeline, schedule: a scheduled DAG run has nobody to give the required "
        "parameter(s) day, and Airflow refuses to load such a DAG. Give them values at compile "
        "time (-p day=VALUE), defaults in the pipeline, or drop the schedule."
    ) in str(caught.value)
    assert not (tmp_path / "dags").exists()
    # -p at compile time makes it a default: then it compiles.
    fixed = dataclasses.replace(options_for(pipe, tmp_path / "dags"), parameters={"day": "mon"})
    assert AirflowCompiler().compile(pipe, fixed).paths


def test_unknown_dag_setting_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    pipe = make_pipeline(settings={"airflow": {"ownr": "ml-team", "dagrun_timeout": -5}})
    with pytest.raises(UnsupportedError) as caught:
        AirflowCompiler().compile(pipe, options_for(pipe, tmp_path))
    text = str(caught.value)
    assert "settings.airflow.ownr: unknown Airflow setting. Did you mean 'owner'?" in text
    assert "settings.airflow.dagrun_timeout: must be a number of seconds above 0, got -5" in text
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("start_date", "yesterday", "must be an ISO date or date-time"),
        ("on_failure_callback", "alerts.page", "must be an importable 'package.module:function'"),
        ("email", ["a@b.c", 3], "must be str or list[str]"),
        ("email_on_failure", "yes", "must be bool"),
        ("max_consecutive_failed_dag_runs", 2.5, "must be int"),
    ],
)
def test_dag_settings_are_type_checked(tmp_path: Path, key: str, value: object, expected: str):
    pipe = make_pipeline(settings={"airflow": {key: value}})
    with pytest.raises(UnsupportedError, match=re.escape(f"settings.airflow.{key}: {expected}")):
        AirflowCompiler().compile(pipe, options_for(pipe, tmp_path))


def test_dag_settings_reach_the_literal(tmp_path: Path) -> None:
    settings = {
        "owner": "ml-team",
        "start_date": "2025-03-01",
        "dagrun_timeout": 3600,
        "on_failure_callback": "alerts.hooks:page_oncall",
        "on_success_callback": "alerts.hooks:celebrate",
        "email": ["ml@example.com"],
        "email_on_failure": True,
        "max_consecutive_failed_dag_runs": 3,
        "max_active_runs": 1,
        "tags": ["ml"],
    }
    assert set(settings) - {"tags"} <= set(DAG_SETTINGS)
    _, text = compile_to(make_pipeline(settings={"airflow": settings}), tmp_path)
    data = data_of(text)
    assert data["default_args"] == {
        "owner": "ml-team",
        "email": ["ml@example.com"],
        "email_on_failure": True,
    }
    assert data["dag_settings"] == {
        "start_date": "2025-03-01",
        "dagrun_timeout": 3600,
        "on_failure_callback": "alerts.hooks:page_oncall",
        "on_success_callback": "alerts.hooks:celebrate",
        "max_consecutive_failed_dag_runs": 3,
        "max_active_runs": 1,
    }
    assert data["tags"] == ["zenml-bridge", "ml"]


def test_a_parameter_named_no_cache_is_refused(tmp_path: Path) -> None:
    pipe = make_pipeline(parameters=(ir.Parameter(name="no_cache", type="bool", default=False),))
    with pytest.raises(UnsupportedError, match=re.escape("parameters.no_cache: 'no_cache' is")):
        AirflowCompiler().compile(pipe, options_for(pipe, tmp_path))


# -- the dags folder -------------------------------------------------------------------------


def test_dag_id_of_another_source_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    ours = make_pipeline(name="training")
    AirflowCompiler().compile(ours, options_for(ours, dags, extra={"origin": "/team-a/p.py:t"}))
    before = _files(dags)
    theirs = make_pipeline(make_step("other"), name="training")
    with pytest.raises(UnsupportedError) as caught:
        AirflowCompiler().compile(
            theirs, options_for(theirs, dags, extra={"origin": "/team-b/p.py:t"})
        )
    assert (
        f"dag_id: 'training' is already defined in the dags folder by "
        f"{dags / 'zenml_bridge__training.py'} (compiled from /team-a/p.py:t); writing this DAG "
        "would replace it or make Airflow load two DAGs of one id. Compile with --dag-id-prefix "
        "PREFIX to give this one its own id, or --force to replace it."
    ) in str(caught.value)
    assert _files(dags) == before
    # The same origin recompiles; a prefix gives another id; --force replaces.
    again = options_for(ours, dags, extra={"origin": "/team-a/p.py:t"})
    assert AirflowCompiler().compile(ours, again).paths
    prefixed = options_for(
        theirs, dags, extra={"origin": "/team-b/p.py:t", "dag_id_prefix": "team_b."}
    )
    (path,) = AirflowCompiler().compile(theirs, prefixed).paths
    assert path.name == "zenml_bridge__team_b.training.py"
    assert data_of(path.read_text(encoding="utf-8"))["dag_id"] == "team_b.training"
    forced = options_for(theirs, dags, extra={"origin": "/team-b/p.py:t", "force": True})
    assert AirflowCompiler().compile(theirs, forced).paths


def test_hand_written_dag_with_the_id_is_found(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "etl.py").write_text(
        'from airflow import DAG\nwith DAG(dag_id="training", schedule=None):\n    pass\n'
    )
    (tmp_path / "other.py").write_text('DAG("training_v2")\n')
    found = dag_id_owner(tmp_path, "training", "/x.py:training")
    assert found == f"{tmp_path / 'sub' / 'etl.py'} (a DAG file not written by zenml-bridge)"
    assert dag_id_owner(tmp_path, "training_v", "/x.py:training") is None


def test_bad_prefix_is_refused(tmp_path: Path) -> None:
    pipe = make_pipeline()
    options = options_for(pipe, tmp_path, extra={"dag_id_prefix": "team b/"})
    with pytest.raises(UnsupportedError, match=re.escape("'team b/' makes the dag_id")):
        AirflowCompiler().compile(pipe, options)


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zenml_bridge", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "ZENML_BRIDGE_HOME": str(cwd / "home")},
    )


def test_cli_same_pipeline_name_from_another_project_exits_2(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    for team in ("a", "b"):
        (tmp_path / team).mkdir()
        (tmp_path / team / "flow.py").write_text(
            "from zenml_bridge import pipeline, step\n\n@step\ndef one() -> int:\n    return 1\n\n"
            "@pipeline\ndef training() -> None:\n    one()\n"
        )
    first = _cli(
        tmp_path / "a", "compile", "flow.py:training", "--target", "airflow", "--out", str(dags)
    )
    assert first.returncode == 0, first.stderr
    before = _files(dags)
    compile_args = ("compile", "flow.py:training", "--target", "airflow", "--out", str(dags))
    second = _cli(tmp_path / "b", *compile_args)
    assert second.returncode == 2
    assert "Traceback" not in second.stderr
    assert f"(compiled from {tmp_path / 'a' / 'flow.py'}:training)" in second.stderr
    assert "--dag-id-prefix PREFIX" in second.stderr and "--force" in second.stderr
    assert _files(dags) == before
    prefixed = _cli(
        tmp_path / "b", "compile", "flow.py:training", "--target", "airflow",
        "--out", str(dags), "--dag-id-prefix", "team_b_",
    )  # fmt: skip
    assert prefixed.returncode == 0, prefixed.stderr
    assert (dags / "zenml_bridge__team_b_training.py").is_file()


def test_cli_bakes_local_project_stores_as_defaults(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "flow.py").write_text(
        "from zenml_bridge import pipeline, step\n\n@step\ndef one() -> int:\n    return 1\n\n"
        "@pipeline\ndef local_flow() -> None:\n    one()\n"
    )
    assert _cli(project, "init").returncode == 0
    dags = tmp_path / "dags"
    result = _cli(
        project, "compile", "flow.py:local_flow", "--target", "airflow", "--out", str(dags)
    )
    assert result.returncode == 0, result.stderr
    data = data_of((dags / "zenml_bridge__local_flow.py").read_text(encoding="utf-8"))
    home = (project / ".zenml_bridge").resolve()
    assert data["stores"] == {
        "metadata_url": f"sqlite:///{home / 'metadata.db'}",
        "artifact_root": str(home / "artifacts"),
    }
    assert data["origin"] == f"{project / 'flow.py'}:local_flow"
    # Pods and containers do not see this machine's files: no local defaults there.
    k8s = _cli(
        project, "compile", "flow.py:local_flow", "--target", "airflow", "--out",
        str(tmp_path / "k8s"), "--operator", "kubernetes", "--image", "img:1",
    )  # fmt: skip
    assert k8s.returncode == 0, k8s.stderr
    k8s_data = data_of((tmp_path / "k8s" / "zenml_bridge__local_flow.py").read_text("utf-8"))
    assert k8s_data["stores"] == {"metadata_url": None, "artifact_root": None}


# -- parameter descriptions ------------------------------------------------------------------


@step
def use_rows(rows: int, label: str) -> int:
    return rows


@pipeline
def described(
    rows: int = 5,
    label: str = "x",
    plain: int = 0,
    seed: int = parameter(7, description="random seed (beats the docstring)"),
    day: str = parameter(description="required, and described"),
) -> None:
    """Make a report.

    Args:
        rows: how many rows
            to generate.
        label (str): shown on the report.
        seed: never shown.

    Returns:
        nothing.
    """
    use_rows(rows=rows, label=label)


def test_parameter_descriptions_come_from_the_docstring(tmp_path: Path) -> None:
    assert parameter_descriptions(described.func) == {
        "rows": "how many rows to generate.",
        "label": "shown on the report.",
        "seed": "never shown.",
    }
    pipe = described.to_ir()
    assert [(p.name, p.default, p.required, p.description) for p in pipe.parameters] == [
        ("rows", 5, False, "how many rows to generate."),
        ("label", "x", False, "shown on the report."),
        ("plain", 0, False, ""),
        ("seed", 7, False, "random seed (beats the docstring)"),
        ("day", None, True, "required, and described"),
    ]
    _, text = compile_to(pipe, tmp_path)
    descriptions = {p["name"]: p["description"] for p in data_of(text)["parameters"]}
    assert descriptions == {p.name: p.description for p in pipe.parameters}


def test_empty_description_keeps_the_ir_identity() -> None:
    plain = ir.Parameter(name="rows", type="int", default=1)
    assert "description" not in ir.to_dict(plain)
    assert ir.sha256(plain) == ir.sha256(dataclasses.replace(plain, description=""))
    assert ir.sha256(plain) != ir.sha256(dataclasses.replace(plain, description="n"))


def test_a_file_of_an_older_compile_without_origin_is_replaced(tmp_path: Path) -> None:
    old = tmp_path / "zenml_bridge__training.py"
    old.write_text("PIPELINE = {\n    'dag_id': 'training',\n    'description': '',\n}\n")
    assert dag_id_owner(tmp_path, "training", "/team-a/p.py:training") is None
