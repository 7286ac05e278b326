"""Shared compiler machinery: Kubernetes quantities, writable outputs, secrets in store URLs,
prepare-then-finish, and the CLI refusing before it publishes anything."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest

from zenml_bridge import BridgeError, ir
from zenml_bridge.compilers.base import (
    CompileOptions,
    Compiler,
    CompileResult,
    Problem,
    check_writable_folder,
    parse_quantity,
    quantity_problem,
    url_has_password,
    write_atomic,
)

GOLDEN = Path(__file__).parents[1] / "golden" / "pipelines"
# A path nobody can create files under, root included (procfs refuses new entries).
UNWRITABLE = Path("/proc/zenml-bridge-no-such-dir")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", Decimal(2)),
        ("500m", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("1e3", Decimal(1000)),
        ("1E-2", Decimal("0.01")),
        ("1Ki", Decimal(1024)),
        ("1Gi", Decimal(2**30)),
        ("1G", Decimal(10**9)),
        ("1E", Decimal(10**18)),
        ("100u", Decimal("0.0001")),
        ("+1.5k", Decimal(1500)),
    ],
)
def test_kubernetes_quantities_are_parsed_like_kubernetes(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value
    assert quantity_problem("s", "cpu", text) is None


@pytest.mark.parametrize("text", ["", "abc", "1K", "1e", "e3", "1.5.2", " 1", "1 Gi", "1gi"])
def test_non_quantities_are_refused(text: str) -> None:
    assert parse_quantity(text) is None
    problem = quantity_problem("train", "memory", text)
    assert problem is not None
    assert str(problem).startswith(f"error: step 'train', memory: {text!r} is not a")


def test_negative_quantities_are_refused() -> None:
    assert parse_quantity("-1") == Decimal(-1)
    assert quantity_problem("s", "cpu", "-1") is not None


def test_write_atomic_on_an_unwritable_path_is_a_bridge_error() -> None:
    for path in (UNWRITABLE / "x.json", Path("/proc/x.json")):
        with pytest.raises(BridgeError, match=f"Cannot write {path}: ") as caught:
            write_atomic(path, "{}")
        assert "Pass an --out path in a folder you can write to" in str(caught.value)


def test_writable_folder_check(tmp_path: Path) -> None:
    check_writable_folder(tmp_path / "new" / "dags")  # created on write; nothing made now
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(BridgeError, match="is a file, not a folder"):
        check_writable_folder(tmp_path / "file" / "dags")
    with pytest.raises(BridgeError, match=f"Cannot write into {UNWRITABLE}: "):
        check_writable_folder(UNWRITABLE)


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql+psycopg://zb@db.internal/zb", False),
        ("postgresql+psycopg://zb:hunter2@db.internal/zb", True),
        ("mysql+pymysql://root@127.0.0.1/test?password=hunter2", True),
        ("sqlite:////tmp/metadata.db", False),
        ("s3://bucket/zb", False),
        ("s3://AKIA:secretkey@bucket/zb", True),
    ],
)
def test_urls_with_a_password_are_recognised(url: str, secret: bool) -> None:
    assert url_has_password(url) is secret


class _Counting(Compiler):
    """A real (minimal) compiler that records how often its passes and checks run."""

    target = "counting"
    calls: ClassVar[list[str]] = []

    def check(self, pipeline: ir.Pipeline, options: CompileOptions) -> list[Problem]:
        self.calls.append("check")
        return [Problem("warning", None, "x", "noted")]

    def emit(self, pipeline: ir.Pipeline, options: CompileOptions) -> CompileResult:
        self.calls.append(f"emit {options.ir_uri}")
        path = write_atomic(options.out / "out.txt", pipeline.name)
        return CompileResult(paths=(path,))


def test_prepare_then_finish_runs_checks_once(tmp_path: Path) -> None:
    from zenml_bridge.cli.source import load_pipeline

    pipeline = load_pipeline(f"{GOLDEN / 'linear.py'}:linear").to_ir()
    compiler = _Counting()
    _Counting.calls.clear()
    options = CompileOptions(out=tmp_path)
    prepared = compiler.prepare(pipeline, options)
    result = compiler.finish(prepared, dataclasses.replace(options, ir_uri="s3://b/ir.json"))
    assert _Counting.calls == ["check", "emit s3://b/ir.json"]
    assert [w.message for w in result.warnings] == ["noted"]
    with pytest.raises(BridgeError, match="1 problem"):
        compiler.prepare(pipeline, dataclasses.replace(options, strict=True))


def test_store_url_with_a_password_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from zenml_bridge.cli.source import load_pipeline
    from zenml_bridge.compilers.ir import IRCompiler

    pipeline = load_pipeline(f"{GOLDEN / 'linear.py'}:linear").to_ir()
    options = CompileOptions(out=tmp_path / "p.json", metadata_url="postgresql://u:pw@db/zb")
    with pytest.raises(BridgeError) as caught:
        IRCompiler().compile(pipeline, options)
    message = str(caught.value)
    assert "CompileOptions.metadata_url contains a password" in message
    assert "ZENML_BRIDGE_METADATA_URL" in message and "env_from_secret" in message
    assert "pw" not in message.replace("password", "")
    assert list(tmp_path.iterdir()) == []


# -- the CLI ---------------------------------------------------------------------------------


def _cli(
    tmp_path: Path, *args: str, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'metadata.db'}",
        "ZENML_BRIDGE_HOME": str(tmp_path / "home"),
    }
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "compile", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_kubeflow_without_kfp_is_refused_before_publishing(tmp_path: Path) -> None:
    # An environment without kfp: a `kfp` package on the path that fails to import the way a
    # missing one does (so the test runs whether or not this environment has kfp).
    shadow = tmp_path / "shadow"
    (shadow / "kfp").mkdir(parents=True)
    (shadow / "kfp" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'kfp'\", name='kfp')\n"
    )
    src = f"{GOLDEN / 'linear.py'}:linear"
    out = tmp_path / "p.yaml"
    result = _cli(tmp_path, src, "--target", "kubeflow", "--out", str(out), "--image", "i",
                  pythonpath=shadow)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "pip install 'zenml-bridge[kubeflow]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert not (tmp_path / "artifacts").exists()  # refused before the IR was stored


@pytest.mark.parametrize("out", ["/proc/x.json", str(UNWRITABLE / "out.json")])
def test_ir_target_unwritable_out_is_exit_2(tmp_path: Path, out: str) -> None:
    result = _cli(tmp_path, f"{GOLDEN / 'linear.py'}:linear", "--out", out)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "Pass an --out path in a folder you can write to" in result.stderr


@pytest.mark.parametrize("out", ["/proc/dags", str(UNWRITABLE)])
def test_airflow_unwritable_out_is_refused_before_publishing(tmp_path: Path, out: str) -> None:
    result = _cli(tmp_path, f"{GOLDEN / 'linear.py'}:linear", "--target", "airflow", "--out", out)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"Cannot write into {out}: " in result.stderr
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize(
    "quantity", [".5", "1e3", "500m", "2", "1Gi", "5.", "1E-2", "1K", "lots", "-1", "1 Gi"]
)
def test_airflow_and_kubeflow_agree_on_quantities(quantity: str) -> None:
    from zenml_bridge.cli.source import load_pipeline
    from zenml_bridge.compilers.airflow import AirflowCompiler
    from zenml_bridge.compilers.kubeflow import KubeflowCompiler

    pipeline = load_pipeline(f"{GOLDEN / 'linear.py'}:linear").to_ir()
    first = dataclasses.replace(
        pipeline.steps[0], resources=ir.Resources(cpu=quantity, memory=quantity)
    )
    pipeline = dataclasses.replace(pipeline, steps=(first, *pipeline.steps[1:]))
    options = CompileOptions(
        out=Path("unused"), image="i", operator="kubernetes", ir_uri="s3://b/ir.json",
        ir_sha256="0" * 64,
    )  # fmt: skip
    verdicts = []
    for compiler in (AirflowCompiler(), KubeflowCompiler()):
        refused = {p.setting for p in compiler.check(pipeline, options) if p.severity == "error"}
        verdicts.append(refused & {"cpu", "memory"})
    assert verdicts[0] == verdicts[1]
    expected = set() if parse_quantity(quantity) not in (None, Decimal(-1)) else {"cpu", "memory"}
    assert verdicts[0] == expected
