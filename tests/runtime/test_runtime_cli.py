"""The CLI: init, run, runs, artifacts, stack; errors exit 2 with a clear message."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zenml_bridge.cli.main import main

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PIPES = str(HERE / "zb_pipes.py")


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_show_compare_and_artifacts(stores_env: dict[str, str], capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", f"{PIPES}:chain", "-p", "rows=4", capsys=capsys)
    assert code == 0
    assert re.search(r"load\s+running", out) and re.search(r"load\s+done \(\d+\.\d\ds\)", out)
    first = re.search(r"Run (\S+) completed", out).group(1)  # type: ignore[union-attr]
    code, out, _ = cli("run", f"{PIPES}:chain", "-p", "rows=4", "-p", "offset=1", capsys=capsys)
    assert code == 0 and re.search(r"double\s+cached", out)
    code, out, _ = cli("runs", "show", "latest", capsys=capsys)
    assert code == 0
    for text in ('"offset": 1', "IR sha256", "total.sum", "cached", "builtins.json", "Git"):
        assert text in out
    code, out, _ = cli("runs", "show", "latest", "--json", capsys=capsys)
    shown = json.loads(out)
    assert shown["run"]["parameters"] == {"rows": 4, "offset": 1}
    assert {s["step"] for s in shown["steps"]} == {"load", "double", "total", "report"}
    code, out, _ = cli("runs", "list", capsys=capsys)
    assert code == 0 and first in out
    code, out, _ = cli("runs", "compare", first, "latest", capsys=capsys)
    assert code == 0 and re.search(r"offset\s+0\s+1\s+differs", out)
    assert re.search(r"double\.output\s+completed\s+cached\s+\w+\s+\w+\s+same", out)
    art = shown["steps"][0]["outputs"]
    art_id = next(iter(art.values()))["id"]
    code, out, _ = cli("artifacts", "show", art_id[:10], "--value", capsys=capsys)
    assert code == 0 and "Value         [0, 1, 2, 3]" in out
    code, out, _ = cli("artifacts", "lineage", art_id, capsys=capsys)
    assert code == 0 and "produced by  run" in out and "consumed by  run" in out
    assert re.search(r"reused by    run \S+  step load  \(cache hit\)", out)
    code, out, _ = cli("artifacts", "list", "--run", first, capsys=capsys)
    assert code == 0 and out.count(first) == 4


def test_bad_ids_say_did_you_mean(stores_env: dict[str, str], capsys) -> None:  # type: ignore[no-untyped-def]
    cli("run", f"{PIPES}:heads", "--run-id", "nightly-0001", capsys=capsys)
    code, _, err = cli("runs", "show", "nightly-0002", capsys=capsys)
    assert (
        code == 2
        and "There is no run 'nightly-0002'" in err
        and "Did you mean 'nightly-0001'?" in err
    )
    code, out, _ = cli("runs", "show", "nightly-0001", "--json", capsys=capsys)
    art_id = json.loads(out)["steps"][0]["outputs"]["output"]["id"]
    wrong = art_id[:-1] + ("0" if art_id[-1] != "0" else "1")
    code, _, err = cli("artifacts", "show", wrong, capsys=capsys)
    assert code == 2 and f"Did you mean '{art_id}'?" in err


def test_failed_step_exits_1_with_the_users_traceback(stores_env: dict[str, str], capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", f"{PIPES}:failing", capsys=capsys)
    assert code == 1
    assert re.search(r"boom\s+failed", out)
    assert "ValueError: boom in the user's step" in out and "zb_pipes.py" in out
    code, out, _ = cli("runs", "show", "latest", capsys=capsys)
    assert "Status     failed" in out and "boom failed:" in out


def test_unstorable_value_exits_2(stores_env: dict[str, str], capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("run", f"{PIPES}:unstorable", capsys=capsys)
    assert code == 2 and "No materializer can store output 'output' of step 'opaque'" in err


def test_unreachable_database_exits_2(stores_env, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", "postgresql://postgres@127.0.0.1:9/test")
    code, _, err = cli("run", f"{PIPES}:heads", capsys=capsys)
    assert code == 2 and "127.0.0.1:9" in err and "Is the postgresql server running there?" in err


def test_corrupted_artifact_exits_2(stores_env: dict[str, str], capsys) -> None:  # type: ignore[no-untyped-def]
    cli("run", f"{PIPES}:heads", capsys=capsys)
    _, out, _ = cli("runs", "show", "latest", "--json", capsys=capsys)
    info = json.loads(out)["steps"][0]["outputs"]["output"]
    for path in Path(info["uri"]).iterdir():
        path.write_bytes(b"[9]")
    code, _, err = cli("artifacts", "show", info["id"], "--value", capsys=capsys)
    assert code == 2 and "is corrupted" in err


def test_run_config(stores_env: dict[str, str], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "run.yaml"
    config.write_text(
        f"pipeline: {PIPES}:chain\nparameters:\n  rows: 3\nsteps:\n  load:\n    cache: false\n"
    )
    assert cli("run", "--config", str(config), capsys=capsys)[0] == 0
    code, out, _ = cli("run", "--config", str(config), capsys=capsys)
    assert code == 0 and re.search(r"load\s+done", out) and re.search(r"report\s+cached", out)
    config.write_text(f"pipeline: {PIPES}:chain\nparamters: {{rows: 3}}\n")
    code, _, err = cli("run", "--config", str(config), capsys=capsys)
    assert code == 2 and "unknown key 'paramters'. Did you mean 'parameters'?" in err
    config.write_text(f"pipeline: {PIPES}:chain\nsteps:\n  lod: {{cache: false}}\n")
    code, _, err = cli("run", "--config", str(config), capsys=capsys)
    assert code == 2 and "sets step 'lod'" in err and "Did you mean 'load'?" in err
    config.write_text(f"pipeline: {PIPES}:chain\nsteps:\n  load: {{cahce: false}}\n")
    code, _, err = cli("run", "--config", str(config), capsys=capsys)
    assert code == 2 and "unknown key 'cahce'. Did you mean 'cache'?" in err


def test_init_walk_up_and_stacks(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    for key in ("ZENML_BRIDGE_METADATA_URL", "ZENML_BRIDGE_ARTIFACT_ROOT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
    project = tmp_path / "project"
    (project / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(project)
    code, out, _ = cli("init", capsys=capsys)
    assert code == 0 and (project / ".zenml_bridge" / "metadata.db").exists()
    monkeypatch.chdir(project / "src" / "deep")
    code, out, _ = cli("run", f"{PIPES}:heads", capsys=capsys)
    assert code == 0 and str(project / ".zenml_bridge" / "metadata.db") in out
    other = tmp_path / "other.db"
    code, out, _ = cli(
        "stack",
        "register",
        "team",
        "--metadata-url",
        f"sqlite:///{other}",
        "--artifact-root",
        str(tmp_path / "team-artifacts"),
        capsys=capsys,
    )
    assert code == 0
    code, _, err = cli("stack", "set", "taem", capsys=capsys)
    assert code == 2 and "Did you mean 'team'?" in err
    assert cli("stack", "set", "team", capsys=capsys)[0] == 0
    code, out, _ = cli("stack", "list", capsys=capsys)
    assert re.search(r"\*\s+team", out)
    assert cli("run", f"{PIPES}:heads", capsys=capsys)[0] == 0
    assert other.exists() and (tmp_path / "team-artifacts" / "heads").is_dir()
    assert not (tmp_path / "home").exists()  # the project was found: no default location


def test_default_location_is_said_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_BRIDGE_")}
    env.update(
        ZENML_BRIDGE_HOME=str(tmp_path / "home"),
        PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
    )
    command = [sys.executable, "-m", "zenml_bridge", "run", f"{PIPES}:heads"]
    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert first.returncode == 0 == second.returncode, first.stderr
    assert "default location" in first.stderr and "default location" not in second.stderr
    assert (tmp_path / "home" / "metadata.db").exists()


@pytest.mark.slow
def test_readme_quickstart_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_BRIDGE_")}
    env["ZENML_BRIDGE_HOME"] = str(tmp_path / "home")
    src = f"{ROOT / 'examples' / 'quickstart' / 'pipeline.py'}:training"
    run = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "run", src, "-p", "rows=500"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    show = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "runs", "show", "latest"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert show.returncode == 0, show.stderr
    assert "Status     completed" in show.stdout
    assert "train.model" in show.stdout and "sklearn" in show.stdout
    assert re.search(r'"accuracy": 0\.\d+', show.stdout)


def test_import_is_light() -> None:
    code = (
        "import sys, zenml_bridge; heavy = {'sqlalchemy', 'fsspec', 'yaml', 'pandas', 'numpy'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]"
