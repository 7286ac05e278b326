"""Regressions: cache entries that heal, sys.exit() in steps, failures before a step runs,
step env, reused run ids, typed run configs, hidden passwords, bounded caches."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
import zb_pipes
from test_runtime_cli import PIPES, cli
from test_runtime_entrypoint import run_step, write_ir

from zenml_bridge import ir
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import RunFailed, load_run, run_pipeline


@pytest.fixture
def calls(tmp_path: Path, stores_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    path = tmp_path / "calls.txt"
    monkeypatch.setenv("ZB_TEST_CALLS", str(path))

    def read_and_clear() -> list[str]:
        names = path.read_text().split() if path.exists() else []
        path.write_text("")
        return names

    return read_and_clear


def _folder(run, step: str, output: str = "output") -> Path:  # type: ignore[no-untyped-def]
    return Path(run.steps[step].outputs[output].uri)


# -- 1: a bad cache entry is replaced ----------------------------------------------------------


def test_deleted_cached_artifact_is_a_cache_miss(calls) -> None:  # type: ignore[no-untyped-def]
    first = zb_pipes.heads(rows=5)
    calls()
    shutil.rmtree(_folder(first, "load"))
    second = zb_pipes.heads(rows=5)
    assert second.status == "completed"
    assert second.steps["load"].status == "completed"
    assert "load" in calls()
    third = zb_pipes.heads(rows=5)  # the cache now points at the new artifact
    assert third.steps["load"].status == "cached"
    assert third.steps["load"].outputs["output"].load() == [0, 1, 2, 3, 4]


def test_a_corrupted_cache_entry_is_replaced(calls) -> None:  # type: ignore[no-untyped-def]
    first = zb_pipes.heads(rows=5)
    for path in _folder(first, "load").iterdir():
        path.write_bytes(b"[9, 9]")
    with pytest.raises(BridgeError, match="is corrupted"):
        first.steps["load"].outputs["output"].load()
    rerun = zb_pipes.heads(rows=5)  # the damaged hit is a miss: the step runs again
    assert rerun.steps["load"].status == "completed"
    healed = zb_pipes.heads(rows=5)
    assert healed.status == "completed"
    assert healed.steps["load"].status == "cached"
    assert _folder(healed, "load") != _folder(first, "load")
    assert healed.steps["load"].outputs["output"].load() == [0, 1, 2, 3, 4]


# -- 2: sys.exit() in a step is a failure ------------------------------------------------------


def test_sys_exit_in_a_step_fails_the_step(calls) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RunFailed) as info:
        zb_pipes.quitting(rows=3)
    run = load_run(info.value.run.run_id)
    assert run.status == "failed"
    assert run.steps["quits"].status == "failed"
    assert "SystemExit" in str(run.steps["quits"].error)


def test_sys_exit_in_a_step_exits_1_from_the_cli(stores_env: dict[str, str], capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, _ = cli("run", f"{PIPES}:quitting", capsys=capsys)
    assert code == 1


def test_sys_exit_in_a_step_exits_1_from_the_entrypoint(
    tmp_path: Path, stores_env: dict[str, str]
) -> None:
    ir_path, sha = write_ir(zb_pipes.quitting, tmp_path)
    assert run_step(ir_path, sha, "load", "q1").returncode == 0
    done = run_step(ir_path, sha, "quits", "q1")
    assert done.returncode == 1, done.stderr
    run = load_run("q1")
    assert run.status == "failed" and run.steps["quits"].status == "failed"


# -- 3: the entrypoint never leaves a run "running" ----------------------------------------------


def test_unimportable_step_is_recorded_failed_by_the_entrypoint(
    tmp_path: Path, stores_env: dict[str, str]
) -> None:
    pipeline_ir = zb_pipes.heads.to_ir()
    steps = tuple(
        dataclasses.replace(s, source="zb_no_such_module:load") if s.name == "load" else s
        for s in pipeline_ir.steps
    )
    broken = dataclasses.replace(pipeline_ir, steps=steps)
    path = tmp_path / "broken.json"
    path.write_text(ir.dumps(broken))
    done = run_step(str(path), ir.sha256(broken), "load", "imp1")
    assert done.returncode == 2, done.stderr
    assert "Cannot import the step function" in done.stderr
    run = load_run("imp1")
    assert run.status == "failed"
    assert run.steps["load"].status == "failed"
    assert "zb_no_such_module" in str(run.steps["load"].error)


def test_missing_upstream_is_recorded_failed_by_the_entrypoint(
    tmp_path: Path, stores_env: dict[str, str]
) -> None:
    ir_path, sha = write_ir(zb_pipes.heads, tmp_path)
    done = run_step(ir_path, sha, "head", "up1")
    assert done.returncode == 2 and "needs step 'load'" in done.stderr
    run = load_run("up1")
    assert run.status == "failed"
    assert run.steps["head"].status == "failed"
    assert "needs step 'load'" in str(run.steps["head"].error)
    # The orchestrator's retry after the upstream ran still completes the run.
    for step in ("load", "head", "total"):
        assert run_step(ir_path, sha, step, "up1").returncode == 0
    assert load_run("up1").status == "completed"


def test_unimportable_step_is_recorded_failed_by_the_local_runner(calls) -> None:  # type: ignore[no-untyped-def]
    pipeline_ir = zb_pipes.heads.to_ir()
    steps = tuple(
        dataclasses.replace(s, source="zb_no_such_module:head") if s.name == "head" else s
        for s in pipeline_ir.steps
    )
    run = run_pipeline(
        dataclasses.replace(pipeline_ir, steps=steps), {"rows": 3}, raise_on_failure=False
    )
    assert run.status == "failed"
    stored = load_run(run.run_id)
    assert stored.steps["head"].status == "failed"
    assert "zb_no_such_module" in str(stored.steps["head"].error)


# -- 4: step env ----------------------------------------------------------------------------------


def test_step_env_is_applied_and_restored(calls) -> None:  # type: ignore[no-untyped-def]
    assert "ZB_TEST_STEP_ENV" not in os.environ
    run = zb_pipes.envs()
    assert run.steps["with_env"].outputs["output"].load() == "from-env"
    assert run.steps["without_env"].outputs["output"].load() == "<unset>"
    assert "ZB_TEST_STEP_ENV" not in os.environ


def test_step_env_never_leaks_into_a_parallel_step(calls) -> None:  # type: ignore[no-untyped-def]
    run = run_pipeline(zb_pipes.envs, {"pause": 0.4}, parallel=2)
    assert run.steps["with_env"].outputs["output"].load() == "from-env"
    assert run.steps["without_env"].outputs["output"].load() == "<unset>"
    assert "ZB_TEST_STEP_ENV" not in os.environ


def test_step_env_is_part_of_the_cache_key() -> None:
    from zenml_bridge.runtime.step_runner import cache_key

    step = zb_pipes.envs.to_ir().step("with_env")
    other = dataclasses.replace(step, env={"ZB_TEST_STEP_ENV": "other"})
    assert cache_key(step, {}, {}) != cache_key(other, {}, {})
    plain = zb_pipes.heads.to_ir().step("load")
    assert cache_key(plain, {}, {}) == cache_key(dataclasses.replace(plain, env={}), {}, {})


# -- 5: a run id is used once ------------------------------------------------------------------


def test_reused_run_id_is_refused(calls, capsys) -> None:  # type: ignore[no-untyped-def]
    first = run_pipeline(zb_pipes.heads, {"rows": 4}, run_id="R1")
    sha = first.steps["load"].outputs["output"].sha256
    with pytest.raises(BridgeError, match="'R1' already exists.*new --run-id"):
        run_pipeline(zb_pipes.heads, {"rows": 7}, run_id="R1", cache=False)
    again = load_run("R1")
    assert again.parameters == {"rows": 4}
    assert again.steps["load"].outputs["output"].sha256 == sha
    assert again.steps["load"].outputs["output"].load() == [0, 1, 2, 3]
    code, _, err = cli("run", f"{PIPES}:heads", "--run-id", "R1", capsys=capsys)
    assert code == 2 and "'R1' already exists" in err


# -- 6: run config types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("steps: {load: {retries: abc}}", "retries", "a whole number"),
        ("steps: {load: {retries: -1}}", "retries", "a whole number of 0 or more"),
        ("steps: {load: {retry_delay: soon}}", "retry_delay", "a number"),
        ("steps: {load: {cache: 'no'}}", "cache", "true or false"),
        ("steps: {load: {cache_salt: [1]}}", "cache_salt", "a string"),
        ("stack: 3", "stack", "a string"),
        ("metadata_url: 5", "metadata_url", "a string"),
        ("artifact_root: [a]", "artifact_root", "a string"),
        ("cache: 'no'", "cache", "true or false"),
        ("parallel: true", "parallel", "a whole number"),
        ("parallel: 0", "parallel", "a whole number of 1 or more"),
        ("pipeline: 7", "pipeline", "a string"),
        ("parameters: [1]", "parameters", "a mapping"),
        ("steps: [load]", "steps", "a mapping"),
    ],
)
def test_run_config_values_are_type_checked(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    from zenml_bridge.config import load_run_config

    path = tmp_path / "run.yaml"
    path.write_text(text + "\n")
    with pytest.raises(BridgeError) as info:
        load_run_config(path)
    message = str(info.value)
    assert f"'{key}'" in message and str(path) in message and expected in message


def test_mistyped_run_config_exits_2(stores_env: dict[str, str], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "run.yaml"
    config.write_text(f"pipeline: {PIPES}:chain\nsteps:\n  load: {{retries: abc}}\n")
    code, _, err = cli("run", "--config", str(config), capsys=capsys)
    assert code == 2 and "'retries'" in err and "Traceback" not in err


def test_mistyped_stack_value_is_refused(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from zenml_bridge.config import load_settings, write_config

    write_config(tmp_path, {"version": 1, "stacks": {"default": {"metadata_url": 5}}})
    for key in ("ZENML_BRIDGE_METADATA_URL", "ZENML_BRIDGE_ARTIFACT_ROOT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(BridgeError, match="'metadata_url' in the stack 'default'.*a string"):
        load_settings(cwd=tmp_path)


# -- 7: passwords are never printed -------------------------------------------------------------


def test_stack_commands_hide_passwords(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ZENML_BRIDGE_ARTIFACT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    url = "postgresql://ops:s3cr3t-pw@db.example:5432/zb"
    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", url)
    code, out, err = cli("stack", "register", "prod", "--metadata-url", url, capsys=capsys)
    assert code == 0 and "s3cr3t-pw" not in out + err
    code, out, err = cli("stack", "list", capsys=capsys)
    assert code == 0 and "prod" in out
    assert "s3cr3t-pw" not in out + err
    assert "postgresql://ops:***@db.example:5432/zb" in out


def test_init_hides_the_password(postgres_url: str, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL here trusts local connections: any password is accepted, none is printed.
    url = postgres_url.replace("postgres@", "postgres:s3cr3t-pw@")
    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", url)
    monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    code, out, err = cli("init", str(tmp_path / "project"), capsys=capsys)
    assert code == 0, err
    assert "s3cr3t-pw" not in out + err and "postgres:***@" in out


# -- 8, 9: bounded caches, one definition of shared checks ---------------------------------------


def test_prepared_irs_are_bounded() -> None:
    from zenml_bridge.runtime import local

    base = zb_pipes.heads.to_ir()
    kept = [dataclasses.replace(base, name=f"p{i}") for i in range(3 * local._PREPARED_MAX)]
    shas = [local._identity(p) for p in kept]
    assert len(local._PREPARED) <= local._PREPARED_MAX
    assert shas[-1] == ir.sha256(kept[-1]) and local._identity(kept[-1]) == shas[-1]


def test_shared_url_and_error_checks() -> None:
    from zenml_bridge.stores.artifacts import is_local_url, local_path
    from zenml_bridge.stores.fastpath import is_transient_text

    assert is_local_url("/tmp/a") and is_local_url("file:///tmp/a") and is_local_url("rel/a")
    assert not is_local_url("s3://bucket/a") and not is_local_url("gs://b/a")
    assert local_path("file:///tmp/a") == "/tmp/a" and local_path("/tmp/a") == "/tmp/a"
    assert is_transient_text("(sqlite3.OperationalError) Database is locked")
    assert is_transient_text("Deadlock found when trying to get lock")
    assert not is_transient_text("syntax error at or near")
