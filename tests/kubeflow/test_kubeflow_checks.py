"""What a cluster cannot run is a compile error (issue 11, items 3 and 7), and the CLI's output."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from golden_support import shape_pipeline
from kfp_support import GOLDEN_DIR, options

from zenml_bridge import ir
from zenml_bridge.compilers import get_compiler
from zenml_bridge.compilers.base import UnsupportedError
from zenml_bridge.compilers.kubeflow_checks import cron_problem, image_problem


def _compile(pipeline: ir.Pipeline, tmp_path: Path, **overrides: Any) -> Path:
    out = tmp_path / "out.yaml"
    get_compiler("kubeflow").compile(pipeline, options(out, pipeline, **overrides))
    return out


def _first_step(pipeline: ir.Pipeline, **changes: Any) -> ir.Pipeline:
    step = dataclasses.replace(pipeline.steps[0], **changes)
    return dataclasses.replace(pipeline, steps=(step, *pipeline.steps[1:]))


def _kubernetes(settings: dict[str, Any]) -> ir.Pipeline:
    return _first_step(shape_pipeline("linear").to_ir(), settings={"kubernetes": settings})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"image_pull_policy": "IfNotPresnt"}, "'IfNotPresnt' is not one of Always, IfNotPresent"),
        ({"labels": {"Bad Key": "x"}}, "key 'Bad Key': the name must be 1-63 characters"),
        ({"labels": {"Team.io/x": "y"}}, "key 'Team.io/x': the prefix must be a lowercase DNS"),
        ({"labels": {"team": "not ok!"}}, "value 'not ok!': a label value is at most 63"),
        ({"annotations": {"-x": "any text is fine"}}, "key '-x': the name must be 1-63"),
        ({"secret_env": {"DB": {"secret": "My_Secret", "key": "pw"}}},
         "Secret name 'My_Secret' is not a Kubernetes name"),
        ({"secret_env": {"DB": {"secret": "db", "key": "p w"}}}, "Secret key 'p w' must be"),
        ({"secret_env": {"1 DB": {"secret": "db", "key": "pw"}}},
         "'1 DB' is not an environment variable name"),
        ({"image_pull_secrets": ["RegCred"]}, "Secret name 'RegCred' is not a Kubernetes name"),
    ],
)  # fmt: skip
def test_kubernetes_values_a_cluster_refuses_are_errors(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnsupportedError, match=re.escape(message)) as raised:
        _compile(_kubernetes(settings), tmp_path)
    assert "step 'load', settings['kubernetes']" in str(raised.value)
    assert not (tmp_path / "out.yaml").exists()


def test_valid_kubernetes_values_pass(tmp_path: Path) -> None:
    settings = {
        "image_pull_policy": "Always",
        "labels": {"app.kubernetes.io/name": "zb", "empty": ""},
        "annotations": {"example.com/owner": "Me, with spaces!"},
        "secret_env": {"DB_PASSWORD": {"secret": "db.creds", "key": "pass.word"}},
        "image_pull_secrets": ["regcred"],
    }
    assert _compile(_kubernetes(settings), tmp_path).exists()


@pytest.mark.parametrize("image", ["Ghcr.io/Me/ZB", "ghcr.io/me/zb:", "zb image", "a//b", ":tag"])
def test_an_invalid_image_is_an_error(tmp_path: Path, image: str) -> None:
    pipeline = shape_pipeline("linear").to_ir()
    with pytest.raises(UnsupportedError, match=re.escape(f"{image!r} is not a container image")):
        _compile(pipeline, tmp_path, image=image)
    with pytest.raises(UnsupportedError, match=re.escape("fix @step(image=...)")):
        _compile(_first_step(pipeline, image=image), tmp_path)


@pytest.mark.parametrize(
    "image",
    ["python:3.11", "ghcr.io/me/zb:0.1.0", "localhost:5000/zb@sha256:" + "a" * 64, "zb"],
)
def test_valid_images_pass(image: str) -> None:
    assert image_problem(image) is None


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 25 * * *", "hour field '25': 25 is outside 0-23"),
        ("61 * * * *", "minute field '61': 61 is outside 0-59"),
        ("0 0 0 * *", "day of month field '0': 0 is outside 1-31"),
        ("0 0 * 13 *", "month field '13': 13 is outside 1-12"),
        ("0 0 * * MOX", "day of week field 'MOX': 'MOX' is not a number"),
        ("*/0 * * * *", "minute field '*/0': the step after '/' must be a positive number"),
        ("5-1 * * * *", "minute field '5-1': the range 5-1 runs backwards"),
    ],
)
def test_an_invalid_cron_is_an_error(tmp_path: Path, cron: str, message: str) -> None:
    assert cron_problem(cron) == message
    pipeline = dataclasses.replace(shape_pipeline("linear").to_ir(), schedule=cron)
    with pytest.raises(UnsupportedError, match=re.escape(message)):
        _compile(pipeline, tmp_path)


@pytest.mark.parametrize("cron", ["0 6 * * *", "*/15 9-17 * JAN-MAR MON-FRI", "0 0 1,15 * ?"])
def test_valid_crons_pass(cron: str) -> None:
    assert cron_problem(cron) is None


def test_a_fractional_backoff_factor_is_an_error(tmp_path: Path) -> None:
    pipeline = _first_step(
        shape_pipeline("linear").to_ir(), retry=ir.RetryPolicy(max_retries=2, backoff_factor=1.5)
    )
    with pytest.raises(UnsupportedError, match=re.escape("reads the backoff factor as an integer")):
        _compile(pipeline, tmp_path)


def test_retry_max_delay_maps_onto_backoff_max_duration(tmp_path: Path) -> None:
    import yaml

    pipeline = _first_step(
        shape_pipeline("linear").to_ir(), retry=ir.RetryPolicy(max_retries=2, max_delay_s=90)
    )
    spec = next(yaml.safe_load_all(_compile(pipeline, tmp_path).read_text()))
    assert spec["root"]["dag"]["tasks"]["load"]["retryPolicy"]["backoffMaxDuration"] == "90s"


def test_step_max_retry_delay_is_the_kfp_retry_window(tmp_path: Path) -> None:
    import yaml

    from zenml_bridge import pipeline, step

    @step(retries=3, retry_delay=10, retry_backoff=2, max_retry_delay=600)
    def flaky() -> int:
        return 1

    @pipeline
    def windowed() -> None:
        flaky()

    compiled = windowed.to_ir()
    assert compiled.steps[0].retry.max_delay_s == 600
    spec = next(yaml.safe_load_all(_compile(compiled, tmp_path).read_text()))
    assert spec["root"]["dag"]["tasks"]["flaky"]["retryPolicy"] == {
        "maxRetryCount": 3,
        "backoffDuration": "10s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "600s",
    }


def _clash_pipeline() -> ir.Pipeline:
    """A pipeline parameter ``text`` and, in the same step, a data input ``text``."""
    steps = (
        ir.Step(name="make", source="m:make", source_file="m.py", source_line=1,
                code_hash="0" * 64, outputs=(ir.OutputSpec(name="output", type="list[int]"),)),
        ir.Step(name="use", source="m:use", source_file="m.py", source_line=2,
                code_hash="1" * 64,
                inputs=(ir.InputRef.of_parameter("prefix", "text", "str"),
                        ir.InputRef.of_output("text", "make", "output", "list[int]")),
                outputs=(ir.OutputSpec(name="output", type="str"),)),
    )  # fmt: skip
    return ir.Pipeline(
        name="clash", source="m:clash", source_file="m.py", source_line=1,
        parameters=(ir.Parameter(name="text", type="str", default="a"),), steps=steps,
    )  # fmt: skip


def test_parameter_and_artifact_inputs_never_share_a_name(tmp_path: Path) -> None:
    import yaml

    spec = next(yaml.safe_load_all(_compile(_clash_pipeline(), tmp_path).read_text()))
    for component in spec["components"].values():
        inputs = component["inputDefinitions"]
        assert not set(inputs.get("parameters", {})) & set(inputs.get("artifacts", {}))
    use = spec["components"]["comp-use"]["inputDefinitions"]
    assert set(use["parameters"]) == {"prefix", "zenml_bridge_run_uuid"}
    assert set(use["artifacts"]) == {"text"}


def test_reserved_and_clashing_input_names_are_refused(tmp_path: Path) -> None:
    pipeline = _clash_pipeline()
    use = pipeline.steps[1]
    reserved = dataclasses.replace(
        use, inputs=(*use.inputs, ir.InputRef.of_constant("zenml_bridge_run_uuid", "x"))
    )
    with pytest.raises(UnsupportedError, match=re.escape("is reserved for the KFP run id")):
        _compile(dataclasses.replace(pipeline, steps=(pipeline.steps[0], reserved)), tmp_path)
    twins = dataclasses.replace(
        use,
        inputs=(*use.inputs, ir.InputRef.of_constant("parts.0", 1),
                ir.InputRef.of_constant("parts-0", 2)),
    )  # fmt: skip
    with pytest.raises(UnsupportedError, match=re.escape("arguments parts-0 map to the same")):
        _compile(dataclasses.replace(pipeline, steps=(pipeline.steps[0], twins)), tmp_path)


# -- the CLI --------------------------------------------------------------------------------


def _cli(tmp_path: Path, root: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ZENML_BRIDGE_ARTIFACT_ROOT": root,
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'md.db'}",
        "ZENML_BRIDGE_HOME": str(tmp_path / "home"),
    }
    src = f"{GOLDEN_DIR / 'pipelines' / 'linear.py'}:linear"
    return subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "compile", src, "--target", "kubeflow", *args],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip


def test_a_local_artifact_root_is_an_error_under_strict(tmp_path: Path) -> None:
    root = str(tmp_path / "artifacts")
    out = tmp_path / "p.yaml"
    strict = _cli(tmp_path, root, "--image", "ghcr.io/x/zb:1", "--out", str(out), "--strict")
    assert strict.returncode == 2, strict.stdout + strict.stderr
    assert f"artifact root: {root} is a local folder" in strict.stderr
    assert "Traceback" not in strict.stderr
    assert not out.exists() and not Path(root).exists()  # nothing published
    ok = _cli(tmp_path, root, "--image", "ghcr.io/x/zb:1", "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    assert f"warning: the pipeline, artifact root: {root} is a local folder" in ok.stdout
    assert "warning: warning:" not in ok.stdout
    assert "upload p.yaml" in ok.stdout


def test_lightweight_output_is_not_announced_for_a_cluster(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    done = _cli(
        tmp_path, str(tmp_path / "artifacts"), "--executor", "lightweight", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "upload" not in done.stdout
    assert "made for testing with kfp.local" in done.stdout


def test_kfp_caching_flag(tmp_path: Path) -> None:
    import yaml

    out = tmp_path / "p.yaml"
    root = str(tmp_path / "artifacts")
    for value, expected in (("on", {True, False}), ("off", {False})):
        done = _cli(tmp_path, root, "--image", "ghcr.io/x/zb:1", "--out", str(out),
                    "--kfp-caching", value)  # fmt: skip
        assert done.returncode == 0, done.stderr
        tasks = next(yaml.safe_load_all(out.read_text()))["root"]["dag"]["tasks"]
        # A step with @step(cache=False) stays uncached in KFP too (none in 'linear').
        assert {t["cachingOptions"]["enableCache"] for t in tasks.values()} <= expected
        assert {t["cachingOptions"]["enableCache"] for t in tasks.values()} == {value == "on"}
    bad = _cli(tmp_path, root, "--image", "ghcr.io/x/zb:1", "--out", str(out), "--kfp-caching", "x")
    assert bad.returncode == 2 and "-o kfp_caching=x: not one of off, on." in bad.stderr
    assert "Traceback" not in bad.stderr
