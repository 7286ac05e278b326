"""Run identity and duplicate attempts through the entrypoint (issue 9, items 8, 9, 11, 12)."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

import pytest
import zb_states_pipes as pipes
from test_run_states import child_env, entrypoint, run, start, stop, wait_for

from zenml_bridge import ir
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import run_pipeline
from zenml_bridge.stores.metadata import MetadataStore


def _write(pipeline_ir: ir.Pipeline, path: Path) -> tuple[str, str]:
    path.write_text(ir.dumps(pipeline_ir))
    return str(path), ir.sha256(pipeline_ir)


def test_reused_run_id_with_another_ir_is_refused_unless_new_attempt(
    metadata_url: str, tmp_path: Path
) -> None:
    original = pipes.retried.to_ir()
    changed = dataclasses.replace(
        original,
        parameters=tuple(dataclasses.replace(p, default=5) for p in original.parameters),
    )
    ir_a, sha_a = _write(original, tmp_path / "a.json")
    ir_b, sha_b = _write(changed, tmp_path / "b.json")
    assert sha_a != sha_b
    env = child_env(metadata_url, tmp_path)
    assert run(entrypoint(ir_a, sha_a, "first", "same-id"), env, tmp_path).returncode == 0
    store = MetadataStore(metadata_url)
    before = store.step_runs("same-id")["first"]

    refused = run(entrypoint(ir_b, sha_b, "first", "same-id"), env, tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"Error: Run 'same-id' of pipeline 'retried' was started with IR sha256 {sha_a}, but "
        f"this step comes with IR sha256 {sha_b} (the pipeline was changed and deployed again "
        "while the run existed). Start a new run (a new run id), or pass --new-attempt to "
        "run-step to re-run this run with the new IR."
    )
    assert store.get_run("same-id")["ir_sha256"] == sha_a  # type: ignore[index]
    assert store.step_runs("same-id")["first"] == before

    again = run(entrypoint(ir_b, sha_b, "first", "same-id", "--new-attempt"), env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already completed" not in again.stdout  # it ran again, with the new IR
    row = store.step_runs("same-id")["first"]
    assert (row["status"], row["ir_sha256"], row["parameters"]) == ("completed", sha_b, {"rows": 5})
    assert store.get_run("same-id")["ir_sha256"] == sha_b  # type: ignore[index]


def test_reused_run_id_of_another_pipeline_is_refused(metadata_url: str, tmp_path: Path) -> None:
    ir_a, sha_a = _write(pipes.retried.to_ir(), tmp_path / "a.json")
    ir_b, sha_b = _write(pipes.waiting.to_ir(), tmp_path / "b.json")
    env = child_env(metadata_url, tmp_path)
    assert run(entrypoint(ir_a, sha_a, "first", "shared"), env, tmp_path).returncode == 0
    for extra in ((), ("--new-attempt",)):
        refused = run(entrypoint(ir_b, sha_b, "first", "shared", *extra), env, tmp_path)
        assert refused.returncode == 2
        assert refused.stderr.strip() == (
            "Error: The run id 'shared' belongs to pipeline 'retried', not 'waiting'. A run id "
            "is used by one pipeline only: choose a new run id."
        )


@pytest.mark.parametrize("same", [True, False])
def test_two_attempts_of_one_step_at_once(metadata_url: str, tmp_path: Path, same: bool) -> None:
    """A duplicate (zombie) task: identical output is discarded, a different one fails."""
    ir_path = tmp_path / "racing.json"
    path, sha = _write(pipes.racing.to_ir(), ir_path)
    release = tmp_path / "release"
    env = child_env(metadata_url, tmp_path, ZB_STATES_RELEASE=str(release))
    if same:
        env["ZB_STATES_SAME"] = "1"
    assert run(entrypoint(path, sha, "first", "race"), env, tmp_path).returncode == 0
    markers = [tmp_path / "one", tmp_path / "two"]
    procs = [
        start(
            entrypoint(path, sha, "racer", "race"), {**env, "ZB_STATES_STARTED": str(m)}, tmp_path
        )
        for m in markers
    ]
    try:
        for marker, proc in zip(markers, procs):
            wait_for(marker, proc)  # both are running the step now
        release.write_text("")
        results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    finally:
        for proc in procs:
            stop(proc)
    store = MetadataStore(metadata_url)
    row = store.step_runs("race")["racer"]
    assert row["status"] == "completed"
    output = row["outputs"]["output"]
    step_dir = Path(output["uri"]).parent
    assert not [n for n in os.listdir(step_dir) if ".tmp-" in n]  # no temporary folder left
    from zenml_bridge.stores.artifacts import ArtifactStore

    store_a = ArtifactStore(env["ZENML_BRIDGE_ARTIFACT_ROOT"])
    assert store_a.content_hash(output["uri"]) == output["sha256"]  # the record matches
    codes = sorted(r[0] for r in results)
    if same:
        assert codes == [0, 0], results
        assert os.listdir(step_dir) == ["output"]
    else:
        assert codes == [0, 2], results
        loser = next(r for r in results if r[0] == 2)
        assert (
            "was completed by another attempt at the same time, with different output" in (loser[2])
        )
    assert store.get_run("race")["status"] == "completed"  # type: ignore[index]


def test_parallel_32_on_server_databases(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--parallel 32: no connection per thread held for its life (QueuePool 5 + 10 before)."""
    for name in ("postgres_url", "mariadb_url", "sqlite_url"):
        url = str(request.getfixturevalue(name))
        monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", url)
        monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", str(tmp_path / name))
        monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
        started = time.monotonic()
        result = run_pipeline(pipes.fan, parallel=32, cache=False)
        assert result.status == "completed", name
        assert result.steps["combine"].outputs["output"].load() == sum(range(40))
        assert time.monotonic() - started < 600  # only a guard against a hang, not a timing


def test_run_id_over_255_characters_is_refused_by_the_cli_and_the_entrypoint(
    stores_env: dict[str, str], tmp_path: Path
) -> None:
    from zenml_bridge.cli.main import main

    long_id = "x" * 300
    message = (
        f"The run id '{'x' * 40}'... is 300 characters long; a run id has 1 to 255 "
        "characters. Choose a shorter --run-id (or leave it out for a generated one)."
    )
    with pytest.raises(BridgeError, match=re.escape(message)):
        run_pipeline(pipes.retried, run_id=long_id)
    path, sha = _write(pipes.retried.to_ir(), tmp_path / "r.json")
    env = child_env(stores_env["ZENML_BRIDGE_METADATA_URL"], tmp_path)
    done = run(entrypoint(path, sha, "first", long_id), env, tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == f"Error: {message}"
    assert main(["run", f"{Path(pipes.__file__)}:retried", "--run-id", long_id]) == 2
    assert MetadataStore(stores_env["ZENML_BRIDGE_METADATA_URL"]).list_runs() == []
