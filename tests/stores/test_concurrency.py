"""Concurrent attempts, server databases and schema creation (issue 9, items 9, 11, 12).

Everything runs against real SQLite, PostgreSQL and MariaDB (``metadata_url``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zenml_bridge.errors import BridgeError
from zenml_bridge.stores.artifacts import _HOST, ArtifactStore
from zenml_bridge.stores.metadata import MetadataStore
from zenml_bridge.stores.schema import SCHEMA_VERSION


def _begin(store: MetadataStore, run_id: str, sha: str = "a" * 64) -> None:
    store.begin_run(run_id=run_id, pipeline="p", ir_sha256=sha, ir_json=lambda: "{}", parameters={})


def _outputs(sha: str) -> dict[str, dict[str, str]]:
    return {
        "output": {
            "id": "art1",
            "uri": "/x",
            "sha256": sha,
            "materializer": "json",
            "version": "1",
            "type": "builtins.int",
        }
    }


def _record(store: MetadataStore, status: str, sha: str = "1" * 64, **kw: object) -> dict:
    return store.record_step(
        run_id="r1",
        step="s",
        status=status,
        outputs=_outputs(sha) if status == "completed" else {},
        started_at=time.time(),
        ended_at=time.time(),
        **kw,  # type: ignore[arg-type]
    )


def test_failed_or_running_attempt_never_overwrites_a_completed_record(
    metadata_url: str,
) -> None:
    store = MetadataStore(metadata_url)
    _begin(store, "r1")
    assert _record(store, "completed", attempt=1)["status"] == "completed"
    late = _record(store, "failed", error="zombie attempt failed", attempt=2)
    assert late["status"] == "completed"
    store.mark_step_running(run_id="r1", step="s", attempt=3)
    row = store.step_runs("r1")["s"]
    assert (row["status"], row["attempt"], row["error"]) == ("completed", 1, None)
    assert row["outputs"] == _outputs("1" * 64)


def test_concurrent_completed_attempts_identical_is_discarded_differing_fails(
    metadata_url: str,
) -> None:
    store = MetadataStore(metadata_url)
    _begin(store, "r1")
    _record(store, "completed", "1" * 64, attempt=1)
    assert _record(store, "completed", "1" * 64, attempt=2)["status"] == "completed"
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "Step 's' of run r1 was completed by another attempt at the same time, with "
            f"different output content (this attempt's outputs {{'output': '{'2' * 64}'}}, "
            f"recorded {{'output': '{'1' * 64}'}}). The recorded outputs are kept."
        ),
    ):
        _record(store, "completed", "2" * 64, attempt=3, write_cache=True, cache_key="k" * 64)
    row = store.step_runs("r1")["s"]
    assert (row["attempt"], row["outputs"]) == (1, _outputs("1" * 64))
    assert store.lookup_cache("k" * 64) is None  # the losing attempt's transaction rolled back


def test_a_new_attempt_with_a_new_ir_replaces_the_completed_record(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    _begin(store, "r1")
    _record(store, "completed", "1" * 64)
    assert store.step_runs("r1")["s"]["ir_sha256"] == "a" * 64
    with pytest.raises(BridgeError, match="was started with IR sha256"):
        _begin(store, "r1", "b" * 64)
    store.begin_run(
        run_id="r1",
        pipeline="p",
        ir_sha256="b" * 64,
        ir_json=lambda: "{}",
        parameters={},
        new_attempt=True,
    )
    assert store.get_run("r1")["ir_sha256"] == "b" * 64  # type: ignore[index]
    assert _record(store, "failed", error="new IR failed")["status"] == "failed"
    row = store.step_runs("r1")["s"]
    assert (row["status"], row["ir_sha256"]) == ("failed", "b" * 64)


def test_existing_artifact_folder_is_never_replaced(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "arts"))

    def saver(text: str):  # type: ignore[no-untyped-def]
        def save(folder: str, fs: object) -> None:
            Path(folder, "data.txt").write_text(text)

        return save

    first, sha1, _ = store.write("p", "run", "s", "output", saver("one"))
    again, sha2, _ = store.write("p", "run", "s", "output", saver("one"))
    assert (again, sha2) == (first, sha1)  # identical: discarded, the same folder
    other, sha3, _ = store.write("p", "run", "s", "output", saver("two"))
    assert other == f"{first}.{sha3[:16]}" and sha3 != sha1
    assert Path(first, "data.txt").read_text() == "one"  # the first is intact
    assert Path(other, "data.txt").read_text() == "two"
    assert sorted(os.listdir(Path(first).parent)) == ["output", f"output.{sha3[:16]}"]


def test_existing_remote_artifact_folder_is_never_replaced() -> None:
    pytest.importorskip("fsspec")
    store = ArtifactStore(f"memory://zb-{os.getpid()}-{time.time_ns()}")

    def saver(text: str):  # type: ignore[no-untyped-def]
        def save(folder: str, fs) -> None:  # type: ignore[no-untyped-def]
            with fs.open(f"{folder}/data.txt", "w") as handle:
                handle.write(text)

        return save

    first, sha1, _ = store.write("p", "run", "s", "output", saver("one"))
    assert store.write("p", "run", "s", "output", saver("one"))[:2] == (first, sha1)
    other, sha2, _ = store.write("p", "run", "s", "output", saver("two"))
    assert other == f"{first}.{sha2[:16]}"
    assert store.read(first, sha1, lambda folder, fs: fs.cat_file(f"{folder}/data.txt")) == b"one"


def test_cleanup_removes_dead_writers_temp_folders_only(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "arts"))
    step_dir = Path(store.folder("p", "run", "s", "output")).parent
    step_dir.mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        live_temp = step_dir / f".output.tmp-{_HOST}-{live.pid}-aaaaaaaaaaaa"
        dead_temp = step_dir / f".output.tmp-{_HOST}-{dead.pid}-bbbbbbbbbbbb"
        other_host = step_dir / f".output.tmp-00000000-{dead.pid}-cccccccccccc"
        for folder in (live_temp, dead_temp, other_host):
            folder.mkdir()
            (folder / "part").write_text("half-written")

        def save(folder: str, fs: object) -> None:
            Path(folder, "data.txt").write_text("x")

        store.write("p", "run", "s", "output", save)
        assert live_temp.exists()  # a live writer's folder is never removed
        assert other_host.exists()  # another machine's: only after the age limit
        assert not dead_temp.exists()
        os.utime(other_host, (time.time() - 10, time.time() - 10))
        env_before = os.environ.get("ZENML_BRIDGE_TEMP_MAX_AGE")
        os.environ["ZENML_BRIDGE_TEMP_MAX_AGE"] = "5"
        try:
            store.write("p", "run", "s", "output", save)
        finally:
            if env_before is None:
                del os.environ["ZENML_BRIDGE_TEMP_MAX_AGE"]
            else:
                os.environ["ZENML_BRIDGE_TEMP_MAX_AGE"] = env_before
        assert not other_host.exists() and live_temp.exists()
    finally:
        live.kill()
        live.wait()


def test_run_id_over_255_characters_is_refused_before_anything_is_written(
    metadata_url: str,
) -> None:
    store = MetadataStore(metadata_url)
    run_id = "r" * 300
    with pytest.raises(
        BridgeError,
        match=re.escape(
            f"The run id '{'r' * 40}'... is 300 characters long; a run id has 1 to 255 "
            "characters. Choose a shorter --run-id (or leave it out for a generated one)."
        ),
    ):
        _begin(store, run_id)
    assert store.list_runs() == []
    with store._read() as conn:
        import sqlalchemy as sa

        count = conn.execute(sa.select(sa.func.count()).select_from(store.t.pipelines)).scalar()
    assert count == 0


OPEN_STORE = """
import json, sys, time
from zenml_bridge.stores.metadata import MetadataStore
url, n = sys.argv[1], sys.argv[2]
while time.time() < float(sys.argv[3]):
    time.sleep(0.001)
store = MetadataStore(url)
store.begin_run(run_id=f"run-{n}", pipeline="p", ir_sha256="a" * 64, ir_json=lambda: "{}",
                parameters={})
print(json.dumps(sorted(store.step_runs(f"run-{n}"))))
"""


def test_32_processes_open_a_new_store_at_once(metadata_url: str, tmp_path: Path) -> None:
    script = tmp_path / "open_store.py"
    script.write_text(OPEN_STORE)
    go = time.time() + 5  # all start together, after their imports
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), metadata_url, str(n), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for n in range(32)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    failures = [r for r in results if r[0] != 0]
    assert not failures, failures[:2]
    store = MetadataStore(metadata_url)
    assert len(store.list_runs(limit=100)) == 32
    with store._read() as conn:
        import sqlalchemy as sa

        table = store.t.schema_version
        rows = conn.execute(sa.select(table.c.id, table.c.version)).all()
    assert [tuple(r) for r in rows] == [(1, SCHEMA_VERSION)]
    assert all(json.loads(r[1]) == [] for r in results)
