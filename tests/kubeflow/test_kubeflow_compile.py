"""The Kubeflow compiler: golden YAML, strict parsing by real kfp, what each setting maps to."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from golden_support import SHAPES, check_golden, shape_pipeline
from google.protobuf import json_format
from kfp import components
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2
from kfp_support import COMPONENTS_SHA, COMPONENTS_URI, GOLDEN_DIR, options

from zenml_bridge import ir
from zenml_bridge.compilers import get_compiler
from zenml_bridge.compilers.base import UnsupportedError

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
GOLDEN_FILES = [f"{shape}.yaml" for shape in SHAPES] + ["linear_lightweight.yaml"]


#: The diamond golden also passes the stack's published component config to every step.
GOLDEN_COMPONENTS = {"components_uri": COMPONENTS_URI, "components_sha256": COMPONENTS_SHA}


def compile_text(pipeline: ir.Pipeline, tmp_path: Path, **overrides: object) -> str:
    out = tmp_path / "out.yaml"
    get_compiler("kubeflow").compile(pipeline, options(out, pipeline, **overrides))
    return out.read_text(encoding="utf-8")


def documents(text: str) -> list[dict]:
    return list(yaml.safe_load_all(text))


def strict_parse(text: str) -> pipeline_spec_pb2.PipelineSpec:
    """Parse both documents with unknown fields refused; return the PipelineSpec."""
    docs = documents(text)
    spec = json_format.ParseDict(
        docs[0], pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False
    )
    executor_spec = pipeline_spec_pb2.PipelineDeploymentConfig.ExecutorSpec
    for executor in docs[0]["deploymentSpec"]["executors"].values():
        json_format.ParseDict(executor, executor_spec(), ignore_unknown_fields=False)
    if len(docs) > 1:
        json_format.ParseDict(
            docs[1], pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False
        )
        k8s = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for config in k8s.values():
            json_format.ParseDict(
                config,
                kubernetes_executor_config_pb2.KubernetesExecutorConfig(),
                ignore_unknown_fields=False,
            )
    return spec


@pytest.mark.parametrize("shape", SHAPES)
def test_yaml_matches_golden(shape: str, tmp_path: Path) -> None:
    pipeline = shape_pipeline(shape).to_ir()
    extra = GOLDEN_COMPONENTS if shape == "diamond" else {}
    check_golden(f"kubeflow/{shape}.yaml", compile_text(pipeline, tmp_path, **extra))


def test_lightweight_yaml_matches_golden(tmp_path: Path) -> None:
    pipeline = shape_pipeline("linear").to_ir()
    text = compile_text(pipeline, tmp_path, executor="lightweight")
    check_golden("kubeflow/linear_lightweight.yaml", text)


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden_parses_strictly_and_loads_in_kfp(name: str) -> None:
    path = GOLDEN_DIR / "kubeflow" / name
    spec = strict_parse(path.read_text(encoding="utf-8"))
    assert spec.schema_version == "2.1.0"
    component = components.load_component_from_file(str(path))
    assert component.name == spec.pipeline_info.name


@pytest.mark.parametrize("shape", SHAPES)
def test_one_component_executor_and_task_per_step_with_all_upstreams(
    shape: str, tmp_path: Path
) -> None:
    pipeline = shape_pipeline(shape).to_ir()
    spec = documents(compile_text(pipeline, tmp_path))[0]
    tasks = spec["root"]["dag"]["tasks"]
    assert len(tasks) == len(spec["components"]) == len(pipeline.steps)
    assert len(spec["deploymentSpec"]["executors"]) == len(pipeline.steps)
    for step in pipeline.steps:
        task = tasks[ir.k8s_name(step.name)]
        assert task.get("dependentTasks", []) == [ir.k8s_name(u) for u in step.upstream]
        # KFP's own cache is off unless --kfp-caching on (ours serves unchanged steps).
        assert task["cachingOptions"] == {"enableCache": False}
        args = spec["deploymentSpec"]["executors"][f"exec-{ir.k8s_name(step.name)}"]["container"]
        assert args["args"][args["args"].index("--step") + 1] == step.name
        assert DNS_LABEL.fullmatch(ir.k8s_name(step.name))


def test_after_edge_and_cache_off_are_explicit(tmp_path: Path) -> None:
    spec = documents(compile_text(shape_pipeline("diamond").to_ir(), tmp_path))[0]
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["report"]["dependentTasks"] == ["bottom"]
    # order only, no data: the only input is the run uuid
    assert list(tasks["report"]["inputs"]["parameters"]) == ["zenml_bridge_run_uuid"]
    assert "artifacts" not in tasks["report"]["inputs"]
    assert tasks["bottom"]["cachingOptions"] == {"enableCache": False}
    assert tasks["bottom"]["dependentTasks"] == ["left", "right"]


def test_parameters_become_typed_root_inputs_and_p_overrides_defaults(tmp_path: Path) -> None:
    pipeline = shape_pipeline("params").to_ir()
    text = compile_text(pipeline, tmp_path, parameters={"rows": 500, "label": "x\ny: 'z'"})
    spec = documents(text)[0]
    root = spec["root"]["inputDefinitions"]["parameters"]
    assert root["rows"] == {
        "parameterType": "NUMBER_INTEGER",
        "defaultValue": 500,
        "isOptional": True,
    }
    assert root["label"]["defaultValue"] == "x\ny: 'z'"
    assert root["ratio"]["parameterType"] == "NUMBER_DOUBLE"
    assert root["enabled"] == {"parameterType": "BOOLEAN", "defaultValue": True, "isOptional": True}
    assert root["weights"] == {
        "parameterType": "LIST",
        "defaultValue": [0.5, 0.5],
        "isOptional": True,
    }
    # Each task gets only the parameters its step reads (plus the run uuid).
    generate = spec["root"]["dag"]["tasks"]["generate"]["inputs"]["parameters"]
    uuid = {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
    assert generate == {
        "rows": {"componentInputParameter": "rows"},
        "seed": {"componentInputParameter": "seed"},
        "label": {"componentInputParameter": "label"},
        "zenml_bridge_run_uuid": uuid,
    }
    component = spec["components"]["comp-generate"]["inputDefinitions"]["parameters"]
    assert component["label"] == {
        "parameterType": "STRING",
        "defaultValue": "x\ny: 'z'",
        "isOptional": True,
    }
    # Literals are inputs too (runtime-value constants, with their value as default).
    summarize = spec["root"]["dag"]["tasks"]["summarize"]["inputs"]["parameters"]
    assert summarize["options"] == {"runtimeValue": {"constant": {"enabled": True}}}
    assert set(summarize) == {"options", "weights", "zenml_bridge_run_uuid"}


def test_unknown_p_parameter_is_refused(tmp_path: Path) -> None:
    pipeline = shape_pipeline("params").to_ir()
    with pytest.raises(ir.BridgeError, match=re.escape("has no parameter 'rowz'. Did you mean")):
        compile_text(pipeline, tmp_path, parameters={"rowz": 1})
    assert not (tmp_path / "out.yaml").exists()


def test_retries_resources_env_and_timeout(tmp_path: Path) -> None:
    pipeline = shape_pipeline("params").to_ir()
    spec, platform = documents(compile_text(pipeline, tmp_path))
    task = spec["root"]["dag"]["tasks"]["generate"]
    assert task["retryPolicy"] == {
        "maxRetryCount": 1,
        "backoffDuration": "10s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s",  # always written, as the kfp SDK does
    }
    container = spec["deploymentSpec"]["executors"]["exec-generate"]["container"]
    assert container["resources"] == {  # both generations, as the kfp SDK writes them
        "cpuLimit": 0.5,
        "cpuRequest": 0.5,
        "memoryLimit": 1.073741824,
        "memoryRequest": 1.073741824,
        "resourceCpuLimit": "500m",
        "resourceCpuRequest": "500m",
        "resourceMemoryLimit": "1Gi",
        "resourceMemoryRequest": "1Gi",
    }
    assert container["env"] == [{"name": "MODE", "value": "test"}]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors == {"exec-generate": {"activeDeadlineSeconds": 120}}


def _with_kubernetes(pipeline: ir.Pipeline, settings: dict) -> ir.Pipeline:
    step = dataclasses.replace(
        pipeline.steps[0],
        settings={"kubernetes": settings},
        resources=ir.Resources(gpu=2),
        retry=ir.RetryPolicy(max_retries=3, delay_s=1.5, max_delay_s=60),
    )
    return dataclasses.replace(pipeline, steps=(step, *pipeline.steps[1:]))


def test_kubernetes_settings_go_to_the_platform_spec(tmp_path: Path) -> None:
    pipeline = _with_kubernetes(
        shape_pipeline("linear").to_ir(),
        {
            "node_selector": {"disktype": "ssd"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "secret_env": {"DB_PASSWORD": {"secret": "db", "key": "password"}},
            "labels": {"team": "ml"},
            "image_pull_secrets": ["regcred"],
            "gpu_resource": "amd.com/gpu",
        },
    )
    text = compile_text(pipeline, tmp_path)
    strict_parse(text)
    spec, platform = documents(text)
    config = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-load"]
    assert config == {
        "nodeSelector": {"labels": {"disktype": "ssd"}},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "secretAsEnv": [
            {"secretName": "db", "keyToEnv": [{"secretKey": "password", "envVar": "DB_PASSWORD"}]}
        ],
        "podMetadata": {"labels": {"team": "ml"}},
        "imagePullSecret": [{"secretName": "regcred"}],
    }
    container = spec["deploymentSpec"]["executors"]["exec-load"]["container"]
    assert container["resources"]["accelerator"] == {
        "type": "amd.com/gpu",
        "count": 2,
        "resourceType": "amd.com/gpu",
        "resourceCount": "2",
    }
    retry = spec["root"]["dag"]["tasks"]["load"]["retryPolicy"]
    assert retry["backoffDuration"] == "1.5s" and retry["backoffMaxDuration"] == "60s"


def test_unknown_kubernetes_setting_is_an_error_naming_step_and_key(tmp_path: Path) -> None:
    pipeline = _with_kubernetes(shape_pipeline("linear").to_ir(), {"node_selektor": {"a": "b"}})
    with pytest.raises(UnsupportedError) as raised:
        compile_text(pipeline, tmp_path)
    message = str(raised.value)
    assert "step 'load', settings['kubernetes']['node_selektor']: unknown key" in message
    assert "Did you mean 'node_selector'?" in message
    assert not (tmp_path / "out.yaml").exists()


def test_schedule_is_a_sidecar_with_a_warning_and_an_error_under_strict(tmp_path: Path) -> None:
    pipeline = shape_pipeline("params").to_ir()
    out = tmp_path / "p.yaml"
    compiler = get_compiler("kubeflow")
    result = compiler.compile(pipeline, options(out, pipeline))
    sidecar = tmp_path / "p.schedule.json"
    assert result.paths == (out, sidecar)
    assert [w.setting for w in result.warnings] == ["schedule"]
    assert json.loads(sidecar.read_text())["cron_expression"] == "0 0 6 * * *"
    strict_out = tmp_path / "strict" / "p.yaml"
    with pytest.raises(UnsupportedError, match=re.escape("a PipelineSpec cannot hold a schedule")):
        compiler.compile(pipeline, options(strict_out, pipeline, strict=True))
    assert not strict_out.parent.exists() or not any(strict_out.parent.iterdir())


def test_container_executor_needs_an_image(tmp_path: Path) -> None:
    pipeline = shape_pipeline("linear").to_ir()
    with pytest.raises(
        UnsupportedError, match=re.escape("pass --image IMAGE or set @step(image=...)")
    ):
        compile_text(pipeline, tmp_path, image=None)


def test_kubernetes_name_collision_is_refused(tmp_path: Path) -> None:
    pipeline = shape_pipeline("linear").to_ir()
    twin = dataclasses.replace(pipeline.steps[0], name="Load")
    broken = dataclasses.replace(pipeline, steps=(*pipeline.steps, twin))
    with pytest.raises(UnsupportedError, match=re.escape("maps to the Kubernetes name 'load'")):
        compile_text(broken, tmp_path)


def test_no_code_archive_leaves_the_archive_out(tmp_path: Path) -> None:
    pipeline = shape_pipeline("linear").to_ir()
    text = compile_text(pipeline, tmp_path, code_archive=False)
    assert "--code-archive" not in text
    assert "--code-archive" in compile_text(pipeline, tmp_path)


def test_store_urls_reach_the_workers_as_env(tmp_path: Path) -> None:
    pipeline = shape_pipeline("linear").to_ir()
    text = compile_text(
        pipeline, tmp_path, metadata_url="postgresql://db/zb", artifact_root="s3://bucket/a"
    )
    env = documents(text)[0]["deploymentSpec"]["executors"]["exec-load"]["container"]["env"]
    assert {"name": "ZENML_BRIDGE_METADATA_URL", "value": "postgresql://db/zb"} in env
    assert {"name": "ZENML_BRIDGE_ARTIFACT_ROOT", "value": "s3://bucket/a"} in env


def test_output_is_deterministic(tmp_path: Path) -> None:
    pipeline = shape_pipeline("multi_output").to_ir()
    assert compile_text(pipeline, tmp_path) == compile_text(pipeline, tmp_path)


# -- hostile names and values -----------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NASTY_TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            'it\'s "quoted"',
            "'''triple''' \"\"\"",
            "back\\slash\\n",
            "line\nbreak\r\n",
            "{{$}} {{$.inputs.parameters['x']}}",
            "__import__('os').system('x')",
            "yes",
            "null",
            "~",
            "- item",
            "key: value",
            "# comment",
            "&anchor *alias !tag %",
            "@at `tick`",
            "0x1F",
            "1e3",
            "ünïcödé ✓ 🚀",
            "\t tab ",
            " leading and trailing ",
        ]
    ),
    st.text(max_size=40),
)
JSON_VALUE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        NASTY_TEXT,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(NASTY_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)
NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,62}", fullmatch=True).filter(
    lambda n: ir.k8s_name(n) != ""
)


def _hostile_pipeline(
    pipeline_name: str, step_names: list[str], values: list, env: str, description: str
) -> ir.Pipeline:
    parameters = tuple(
        ir.Parameter(name=f"p{i}", type="Any", default=value) for i, value in enumerate(values)
    )
    steps = []
    for i, name in enumerate(step_names):
        inputs = [ir.InputRef.of_parameter(f"p{j}", f"p{j}") for j in range(len(values))]
        if i:
            inputs.append(ir.InputRef.of_output("upstream", step_names[i - 1], "output"))
        steps.append(
            ir.Step(
                name=name,
                source=f"hostile:{name}",
                source_file="hostile.py",
                source_line=1,
                code_hash="0" * 64,
                description=description,
                inputs=tuple(inputs),
                outputs=(ir.OutputSpec(name="output"),),
                env={"HOSTILE": env},
            )
        )
    return ir.Pipeline(
        name=pipeline_name,
        source="hostile:p",
        source_file="hostile.py",
        source_line=1,
        description=description,
        parameters=parameters,
        steps=tuple(steps),
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pipeline_name=NAME,
    step_names=st.lists(NAME, min_size=1, max_size=4, unique_by=ir.k8s_name),
    values=st.lists(JSON_VALUE, max_size=4),
    env=NASTY_TEXT,
    description=NASTY_TEXT,
)
def test_hostile_names_and_values_give_valid_yaml_and_kubernetes_names(
    tmp_path: Path, pipeline_name: str, step_names: list, values: list, env: str, description: str
) -> None:
    pipeline = ir.validate(_hostile_pipeline(pipeline_name, step_names, values, env, description))
    text = compile_text(pipeline, tmp_path)
    spec = strict_parse(text)
    data = documents(text)[0]
    assert DNS_LABEL.fullmatch(spec.pipeline_info.name) and len(spec.pipeline_info.name) <= 63
    assert data["pipelineInfo"]["displayName"] == pipeline_name
    for key in data["root"]["dag"]["tasks"]:
        assert DNS_LABEL.fullmatch(key) and len(key) <= 63
    roots = data["root"]["inputDefinitions"]["parameters"] if values else {}
    for i, value in enumerate(values):
        if value is None:
            assert "defaultValue" not in roots[f"p{i}"]
        else:
            assert roots[f"p{i}"]["defaultValue"] == value  # the YAML round-trips every value
    for executor in data["deploymentSpec"]["executors"].values():
        assert executor["container"]["env"] == [{"name": "HOSTILE", "value": env}]
    if description:
        assert data["pipelineInfo"]["description"] == description


def test_a_wrongly_typed_kubernetes_value_is_a_bridge_error(tmp_path: Path) -> None:
    pipeline = _with_kubernetes(
        shape_pipeline("linear").to_ir(),
        {"tolerations": [{"key": "gpu", "toleration_seconds": "soon"}]},
    )
    with pytest.raises(ir.BridgeError, match=re.escape("Kubernetes settings of exec-load")):
        compile_text(pipeline, tmp_path)
    assert not (tmp_path / "out.yaml").exists()


def test_cli_compiles_and_strict_refuses_the_schedule(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'md.db'}",
        "ZENML_BRIDGE_HOME": str(tmp_path / "home"),
    }
    src = f"{GOLDEN_DIR / 'pipelines' / 'params.py'}:params"
    base = [sys.executable, "-m", "zenml_bridge", "compile", src, "--target", "kubeflow"]
    strict = subprocess.run(
        [*base, "--out", str(tmp_path / "strict.yaml"), "--image", "img", "--strict"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert strict.returncode == 2, strict.stderr
    assert "a PipelineSpec cannot hold a schedule" in strict.stderr + strict.stdout
    assert not (tmp_path / "strict.yaml").exists()
    ok = subprocess.run(
        [*base, "--out", str(tmp_path / "p.yaml"), "--image", "img", "-p", "rows=9"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "warning: the pipeline, schedule:" in ok.stdout
    assert f"wrote {tmp_path / 'p.schedule.json'}" in ok.stdout
    spec = strict_parse((tmp_path / "p.yaml").read_text())
    assert spec.root.input_definitions.parameters["rows"].default_value.number_value == 9
    args = list(spec.deployment_spec["executors"]["exec-generate"]["container"]["args"])
    ir_uri = args[args.index("--ir") + 1]
    assert Path(ir_uri.removeprefix("file://")).is_file()  # published before compiling


def test_store_url_with_a_password_is_refused(tmp_path: Path) -> None:
    pipeline = shape_pipeline("linear").to_ir()
    url = "postgresql+psycopg://zb:s3cret@db/zb"
    with pytest.raises(ir.BridgeError, match="metadata_url contains a password") as caught:
        compile_text(pipeline, tmp_path, metadata_url=url)
    assert "s3cret" not in str(caught.value)
    assert "secret_env" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_out_is_refused_before_publishing(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    pipeline = shape_pipeline("linear").to_ir()
    with pytest.raises(ir.BridgeError, match="Cannot write into /proc"):
        get_compiler("kubeflow").compile(pipeline, options(Path("/proc/x.yaml"), pipeline))
    env = {
        **os.environ,
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'md.db'}",
        "ZENML_BRIDGE_HOME": str(tmp_path / "home"),
    }
    src = f"{GOLDEN_DIR / 'pipelines' / 'linear.py'}:linear"
    done = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "compile", src, "--target", "kubeflow",
         "--out", "/proc/x.json", "--image", "img"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "Pass an --out path in a folder you can write to" in done.stderr
    assert not (tmp_path / "artifacts").exists()  # nothing published


def test_validation_parses_every_distinct_structure(tmp_path: Path) -> None:
    """Entries that differ only in free text parse alike and are parsed once; a wrongly typed
    value in any step (not only the first) still fails the compile."""
    from zenml_bridge.compilers.kubeflow_spec import _shape

    assert _shape({"args": ["--step", "a"], "cpuLimit": 0.5}) == _shape(
        {"args": ["--step", "b"], "cpuLimit": 0.5}
    )
    assert _shape({"x": "1"}) != _shape({"x": 1})
    assert _shape({"parameterType": "STRING"}) != _shape({"parameterType": "STRUCT"})
    pipeline = shape_pipeline("linear").to_ir()
    last = dataclasses.replace(
        pipeline.steps[-1],
        settings={"kubernetes": {"tolerations": [{"key": "g", "toleration_seconds": "soon"}]}},
    )
    broken = dataclasses.replace(pipeline, steps=(*pipeline.steps[:-1], last))
    with pytest.raises(ir.BridgeError, match=re.escape("Kubernetes settings of exec-total")):
        compile_text(broken, tmp_path)
