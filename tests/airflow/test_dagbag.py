"""Real Airflow loads the generated files: no import errors, the IR's graph and retry policy,
params from pipeline parameters, and user text reaching tasks exactly as written."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import airflow_env, probe
from golden_support import SHAPES, shape_pipeline
from support import compile_to, make_pipeline, make_step
from test_compiler import GOLDEN_OPTIONS

from zenml_bridge import ir

pytestmark = pytest.mark.airflow

HOSTILE = {
    "quotes": 'it\'s "{{ ds }}" \'\'\'x\'\'\' """y"""',
    "code": "__import__('os').system('echo owned'); {% raw %}",
    "shell": "$HOME `id` $(id) \\n \\ \n done",
    "file_like": "script.sh",
    "unicode": "ünïcødé ✓ 🚀",
}


def _hostile(name: str, operator: str) -> ir.Pipeline:
    env = {key.upper(): value for key, value in HOSTILE.items()}
    steps = (
        make_step(
            "first",
            description=HOSTILE["quotes"],
            env=env,
            image=None if operator == "bash" else "registry.local/{{ ds }}/img:script.sh",
            retry=ir.RetryPolicy(max_retries=3, delay_s=7.5, backoff_factor=2.0, max_delay_s=60),
            timeout_s=90,
        ),
        make_step("second", ("first",)),
    )
    parameters = (
        *(ir.Parameter(name=key, type="str", default=value) for key, value in HOSTILE.items()),
        ir.Parameter(name="nested", type="dict", default={"k": ["{{ x }}", 1.5, None, True]}),
    )
    return make_pipeline(
        *steps, name=name, description=HOSTILE["code"], parameters=parameters, schedule="@daily"
    )


@pytest.fixture(scope="module")
def loaded(af_python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every golden shape, two hostile pipelines and one with a required parameter, compiled
    into one dags folder and loaded."""
    root = tmp_path_factory.mktemp("dagbag")
    dags = root / "dags"
    pipelines = {}
    for shape in SHAPES:
        pipelines[shape] = shape_pipeline(shape).to_ir()
        compile_to(pipelines[shape], dags, **GOLDEN_OPTIONS[shape])
    for name, operator in (("hostile_bash", "bash"), ("hostile_k8s", "kubernetes")):
        pipelines[name] = _hostile(name, operator)
        image = "registry.local/default:1" if operator != "bash" else None
        compile_to(pipelines[name], dags, operator=operator, archive=True, image=image)
    required = (ir.Parameter(name="rows", type="int", required=True),)
    pipelines["required"] = make_pipeline(make_step("a"), name="required", parameters=required)
    compile_to(pipelines["required"], dags)  # a Param with no default: given per run
    result = probe(af_python, dags, root / "home", render=True)
    return {"result": result, "pipelines": pipelines}


def test_no_import_errors_and_no_warnings(loaded: dict[str, Any]) -> None:
    result = loaded["result"]
    assert result["import_errors"] == {}
    assert sorted(result["dags"]) == sorted(loaded["pipelines"])
    ours = {f: w for f, w in result["warnings"].items() if "zenml_bridge__" in f}
    assert ours == {}


def test_task_graph_and_retries_equal_the_ir(loaded: dict[str, Any]) -> None:
    for name, pipeline in loaded["pipelines"].items():
        dag = loaded["result"]["dags"][name]
        assert dag["catchup"] is False
        assert dag["start_date"] == "2024-01-01T00:00:00+00:00"
        assert dag["schedule"] == pipeline.schedule
        assert "zenml-bridge" in dag["tags"]
        assert sorted(dag["tasks"]) == sorted(pipeline.step_names)
        for step in pipeline.steps:
            task = dag["tasks"][step.name]
            assert task["upstream"] == list(step.upstream), (name, step.name)
            assert task["do_xcom_push"] is False  # the outcome is in our store, not in XCom
            assert task["retries"] == step.retry.max_retries
            assert task["retry_delay_s"] == step.retry.delay_s
            assert task["max_retry_delay_s"] == step.retry.max_delay_s
            assert task["execution_timeout_s"] == step.timeout_s
            backoff = task["retry_exponential_backoff"]
            if step.retry.backoff_factor == 1.0:
                assert not backoff
            else:  # a multiplier on Airflow 3, True (doubling) on Airflow 2
                assert backoff in (step.retry.backoff_factor, True)


def test_params_are_the_pipeline_parameters(loaded: dict[str, Any]) -> None:
    for name, pipeline in loaded["pipelines"].items():
        # no_cache: the DAG param that makes a run skip cache look-ups (off by default).
        expected = {**{p.name: p.default for p in pipeline.parameters}, "no_cache": False}
        if name == "params":
            expected["rows"] = GOLDEN_OPTIONS["params"]["parameters"]["rows"]  # -p rows=50
        assert loaded["result"]["dags"][name]["params"] == expected, name


def _arguments(rendered: dict[str, Any]) -> dict[str, str]:
    args = rendered["arguments"]
    return dict(zip(args[3::2], args[4::2]))


def test_user_text_reaches_tasks_exactly(loaded: dict[str, Any]) -> None:
    env = {key.upper(): value for key, value in HOSTILE.items()}
    params = {key: value for key, value in HOSTILE.items()}
    params["nested"] = {"k": ["{{ x }}", 1.5, None, True]}
    run_id = re.compile(r"airflow-manual__2024-01-02T03-04-05-00-00-[0-9a-f]{8}")

    bash = loaded["result"]["dags"]["hostile_bash"]["tasks"]["first"]["rendered"]["env"]
    assert {k: bash[k] for k in env} == env
    assert bash["ZENML_BRIDGE_BACKEND"] == "airflow"
    assert json.loads(bash["ZENML_BRIDGE_AIRFLOW_PARAMS_JSON"]) == params
    assert run_id.fullmatch(bash["ZENML_BRIDGE_AIRFLOW_RUN_ID"])
    pipeline = loaded["pipelines"]["hostile_bash"]
    assert bash["ZENML_BRIDGE_AIRFLOW_IR_SHA256"] == ir.sha256(pipeline)

    k8s = loaded["result"]["dags"]["hostile_k8s"]["tasks"]["first"]["rendered"]
    assert k8s["image"] == "registry.local/{{ ds }}/img:script.sh"
    assert {k: k8s["env_vars"][k] for k in env} == env
    arguments = _arguments(k8s)
    assert json.loads(arguments["--params-json"]) == params
    assert run_id.fullmatch(arguments["--run-id"])
    assert arguments["--step"] == "first"
    assert k8s["arguments"][:3] == ["-m", "zenml_bridge.entrypoint", "run-step"]


def test_profiles_map_resources(loaded: dict[str, Any]) -> None:
    k8s = loaded["result"]["dags"]["params"]["tasks"]["generate"]
    assert k8s["operator"] == "KubernetesPodOperator"
    resources = k8s["rendered"]["container_resources"]
    assert resources["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert resources["limits"] == {"memory": "1Gi"}
    assert k8s["rendered"]["env_vars"]["MODE"] == "test"
    docker = loaded["result"]["dags"]["multi_output"]["tasks"]["split"]
    assert docker["operator"] == "DockerOperator"
    assert docker["rendered"]["image"] == "ghcr.io/acme/steps:1.4"
    assert docker["rendered"]["command"][:4] == [
        "python", "-m", "zenml_bridge.entrypoint", "run-step"
    ]  # fmt: skip
    bash = loaded["result"]["dags"]["linear"]["tasks"]["load"]
    assert bash["operator"] == "BashOperator"
    assert bash["rendered"]["env"]["ZENML_BRIDGE_AIRFLOW_PYTHON"] == "/opt/zenml-bridge/bin/python"
    # StopPipeline: every operator ends the task skipped on the entrypoint's exit code 99.
    for task in (k8s, docker, bash):
        assert task["skip_on_exit_code"] == [99], task["operator"]


def test_parse_time_is_reported(loaded: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    seconds = loaded["result"]["seconds"]
    assert seconds > 0
    with capsys.disabled():
        print(f"\nDagBag of {len(loaded['pipelines'])} generated files: {seconds:.2f}s")


def test_golden_files_load_unchanged(af_python: str, tmp_path: Path) -> None:
    """The checked-in golden files themselves import in this Airflow."""
    golden = Path(__file__).parent.parent / "golden" / "airflow"
    dags = tmp_path / "dags"
    dags.mkdir()
    for path in golden.glob("*.py"):
        (dags / f"zenml_bridge__{path.name}").write_text(path.read_text(encoding="utf-8"))
    result = probe(af_python, dags, tmp_path / "home")
    assert result["import_errors"] == {}
    assert sorted(result["dags"]) == sorted(p.stem for p in golden.glob("*.py"))


_COUNT_SIGNATURES = """
import importlib.util, inspect, json, sys
try:
    from airflow.sdk import BaseOperator
except ImportError:
    from airflow.models.baseoperator import BaseOperator
real, seen = inspect.signature, []
def counting(obj, *args, **kwargs):
    if obj is BaseOperator.__init__:
        seen.append(1)
    return real(obj, *args, **kwargs)
inspect.signature = counting
spec = importlib.util.spec_from_file_location("generated_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
backoffs = [t.retry_exponential_backoff for t in module.dag.tasks]
print("ZENML_BRIDGE_PROBE " + json.dumps({"signatures": len(seen), "backoffs": backoffs}))
"""


def test_operator_signature_is_looked_up_once_per_parse(af_python: str, tmp_path: Path) -> None:
    retry = ir.RetryPolicy(max_retries=2, backoff_factor=3.0)
    env = airflow_env(tmp_path / "home", tmp_path / "dags")
    counts = {}
    for n in (1, 4):
        steps = [make_step(f"s{i}", retry=retry) for i in range(n)]
        result, _ = compile_to(make_pipeline(*steps, name=f"backoff{n}"), tmp_path / "dags")
        done = subprocess.run(
            [af_python, "-c", _COUNT_SIGNATURES, str(result.paths[0])],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-4000:]
        line = next(x for x in done.stdout.splitlines() if x.startswith("ZENML_BRIDGE_PROBE "))
        counts[n] = probed = json.loads(line.split(" ", 1)[1])
    # Airflow 2 itself looks the signature up once more while building a DAG: what matters is
    # that the count does not grow with the number of tasks.
    assert counts[1]["signatures"] == counts[4]["signatures"] <= 2
    assert len(probed["backoffs"]) == 4
    assert len(set(map(str, probed["backoffs"]))) == 1
    assert probed["backoffs"][0] in (3.0, True)  # the factor on Airflow 3, doubling on 2


_WITHOUT_BACKOFF = """
import importlib.util, inspect, json, sys
try:
    from airflow.sdk import BaseOperator
except ImportError:
    from airflow.models.baseoperator import BaseOperator
real = inspect.signature
def renamed(obj, *args, **kwargs):
    # As if Airflow renamed retry_exponential_backoff: the parameter is gone from __init__.
    signature = real(obj, *args, **kwargs)
    if obj is BaseOperator.__init__:
        kept = [p for n, p in signature.parameters.items() if n != "retry_exponential_backoff"]
        signature = signature.replace(parameters=kept)
    return signature
inspect.signature = renamed
spec = importlib.util.spec_from_file_location("generated_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
tasks = {t.task_id: t.retries for t in module.dag.tasks}
print("ZENML_BRIDGE_PROBE " + json.dumps({"kind": module.BACKOFF_KIND, "tasks": tasks}))
"""


def test_dag_still_loads_when_airflow_renames_the_backoff_argument(
    af_python: str, tmp_path: Path
) -> None:
    retry = ir.RetryPolicy(max_retries=2, backoff_factor=3.0)
    result, _ = compile_to(make_pipeline(make_step("s", retry=retry)), tmp_path / "dags")
    done = subprocess.run(
        [af_python, "-c", _WITHOUT_BACKOFF, str(result.paths[0])],
        env=airflow_env(tmp_path / "home", tmp_path / "dags"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("ZENML_BRIDGE_PROBE "))
    # No backoff argument, but the DAG and its retries are there.
    assert json.loads(line.split(" ", 1)[1]) == {"kind": None, "tasks": {"s": 2}}


def test_dag_settings_and_param_descriptions_reach_airflow(af_python: str, tmp_path: Path) -> None:
    settings = {
        "owner": "ml-team",
        "start_date": "2025-03-01T06:00:00",
        "dagrun_timeout": 3600,
        "on_failure_callback": "alerts.hooks:page_oncall",
        "on_success_callback": "alerts.hooks:celebrate",
        "email": ["ml@example.com"],
        "email_on_failure": True,
        "max_consecutive_failed_dag_runs": 3,
    }
    pipe = make_pipeline(
        make_step("a"),
        make_step("b", ("a",)),
        settings={"airflow": settings},
        parameters=(ir.Parameter(name="rows", type="int", default=3, description="how many"),),
    )
    compile_to(pipe, tmp_path / "dags")
    result = probe(af_python, tmp_path / "dags", tmp_path / "home")
    assert result["import_errors"] == {}
    dag = result["dags"]["demo"]
    assert dag["start_date"] == "2025-03-01T06:00:00+00:00"
    assert dag["dagrun_timeout_s"] == 3600
    assert dag["max_consecutive_failed_dag_runs"] == 3
    # Imported only when called: parsing the DAG needs no `alerts` package.
    assert dag["callbacks"] == {
        "on_failure_callback": "page_oncall",
        "on_success_callback": "celebrate",
    }
    assert dag["param_descriptions"] == {
        "rows": "how many",
        "no_cache": "Run every step again instead of using the cache.",
    }
    for task in dag["tasks"].values():
        assert task["do_xcom_push"] is False
        assert task["owner"] == "ml-team"
        assert task["email"] == ["ml@example.com"]
        assert task["email_on_failure"] is True
