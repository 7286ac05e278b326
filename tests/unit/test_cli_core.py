"""The CLI skeleton: SRC loading errors, exit codes, compile --target ir, ir schema."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zenml_bridge import BridgeError, ir
from zenml_bridge.cli.main import main
from zenml_bridge.cli.source import load_pipeline

GOLDEN = Path(__file__).parents[1] / "golden" / "pipelines"


def test_src_missing_file() -> None:
    with pytest.raises(
        BridgeError,
        match=re.escape("SRC 'nowhere/p.py:x': the file 'nowhere/p.py' does not exist."),
    ):
        load_pipeline("nowhere/p.py:x")


def test_src_without_colon() -> None:
    with pytest.raises(
        BridgeError, match=re.escape("SRC 'pipeline.py' does not name an object. Write it as")
    ):
        load_pipeline("pipeline.py")


def test_src_unknown_module() -> None:
    with pytest.raises(
        BridgeError, match=re.escape("SRC 'no_such_mod_xyz:p': no module named 'no_such_mod_xyz'.")
    ):
        load_pipeline("no_such_mod_xyz:p")


def test_src_unknown_name_suggests_pipelines() -> None:
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "module 'pipelines.linear' has no attribute 'linaer'. Did you mean 'linear'? "
            "Pipelines there: linear."
        ),
    ):
        load_pipeline(f"{GOLDEN / 'linear.py'}:linaer")


def test_src_that_raises_on_import(tmp_path: Path) -> None:
    bad = tmp_path / "broken_mod.py"
    bad.write_text("x = 1\nraise RuntimeError('boom at import')\n")
    with pytest.raises(BridgeError) as info:
        load_pipeline(f"{bad}:p")
    message = str(info.value)
    assert message.startswith(
        f"SRC '{bad}:p': importing 'broken_mod' raised an error in your code:"
    )
    assert "RuntimeError: boom at import" in message and "line 2" in message


def test_src_that_names_something_else() -> None:
    with pytest.raises(BridgeError, match=re.escape("names a Step, not a @pipeline")):
        load_pipeline(f"{GOLDEN / 'linear.py'}:load")


def test_cli_user_error_prints_message_without_traceback_and_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "zenml_bridge",
            "compile",
            f"{GOLDEN / 'linear.py'}:linaer",
            "--out",
            str(tmp_path / "x.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: SRC ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.json").exists()


def test_cli_broken_pipeline_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad_flow.py"
    src.write_text(
        "from zenml_bridge import pipeline, step\n"
        "@step\ndef a() -> int:\n    return 1\n"
        "@step\ndef b(x: str) -> str:\n    return x\n"
        "@pipeline\ndef flow() -> None:\n    b(a())\n"
    )
    assert main(["compile", f"{src}:flow", "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "Step 'b' input 'x' expects str but 'a.output' is int" in err
    assert "bad_flow.py:10" in err


def test_compile_ir_with_parameter_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.json"
    assert (
        main(
            [
                "compile",
                f"{GOLDEN / 'params.py'}:params",
                "--out",
                str(out),
                "-p",
                "rows=5",
                "-p",
                "label=plain text",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    pipeline = ir.loads(out.read_text())
    assert f"sha256 {ir.sha256(pipeline)}" in printed
    defaults = {p.name: p.default for p in pipeline.parameters}
    assert defaults["rows"] == 5 and defaults["label"] == "plain text"


def test_compile_refuses_unknown_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "compile",
                f"{GOLDEN / 'params.py'}:params",
                "--out",
                str(tmp_path / "p.json"),
                "-p",
                "row=5",
            ]
        )
        == 2
    )
    assert (
        "Pipeline 'params' has no parameter 'row'. Did you mean 'rows'?" in capsys.readouterr().err
    )
    assert (
        main(
            [
                "compile",
                f"{GOLDEN / 'params.py'}:params",
                "--out",
                str(tmp_path / "p.json"),
                "-p",
                "rows",
            ]
        )
        == 2
    )
    assert "Parameter 'rows' is not KEY=VALUE" in capsys.readouterr().err


def test_ir_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ir", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == ir.json_schema()


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compil"]) == 2
    assert "invalid choice: 'compil'" in capsys.readouterr().err


def test_import_is_light() -> None:
    code = (
        "import sys, zenml_bridge\n"
        "heavy = {'pandas', 'numpy', 'sqlalchemy', 'fsspec', 'yaml', 'airflow', 'kfp', 'mlflow'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
