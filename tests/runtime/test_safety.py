"""Issue 9, items 14, 15 and 19 against the real stores and processes: no secret printed, the
entrypoint refuses a hostile IR before touching the stores, code archives are bounded, and
damaged, read-only or full stores and closed pipes give one message instead of a traceback."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zb_pipes
from test_runtime_cli import PIPES, cli
from test_runtime_entrypoint import child_env, run_step, write_ir

from zenml_bridge import ir
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import code_archive
from zenml_bridge.runtime.code_archive import MANIFEST, ensure_code, pack

SECRET = "s3cr3t-Pw"
ROOT = os.geteuid() == 0


def _no_traceback(out: str, err: str) -> None:
    assert "Traceback" not in out + err, out + err


# -- mounts (the real kernel: a full disk, a read-only file system) ------------------------------


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} failed here ({result.stderr.strip()}): needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: writes beyond it fail with ENOSPC, as on a full disk."""
    folder = tmp_path / "small"
    folder.mkdir()
    _mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _make_read_only(folder: Path) -> list[Path]:
    """Make ``folder`` unwritable for this process: a read-only bind mount as root (root ignores
    file modes), else mode 0555/0444. Returns the mounts to undo."""
    if not ROOT:
        for path in folder.iterdir():
            path.chmod(0o444)
        folder.chmod(0o555)
        return []
    _mount("--bind", str(folder), str(folder))
    try:
        _mount("-o", "remount,bind,ro", str(folder))
    except BaseException:
        subprocess.run(["umount", str(folder)], check=False)
        raise
    return [folder]


# -- 14: secrets never printed ---------------------------------------------------------------


def test_run_and_show_commands_never_print_artifact_root_credentials(
    stores_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = f"memory://user:{SECRET}@bucket/{os.urandom(4).hex()}"
    monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", root)
    code, out, err = cli("run", f"{PIPES}:chain", capsys=capsys)
    assert code == 0, err
    assert "memory://user:***@bucket/" in out
    printed = out + err
    for command in (
        ("runs", "show", "latest"),
        ("runs", "show", "latest", "--json"),
        ("runs", "list"),
        ("artifacts", "list"),
        ("stack", "list"),
    ):
        code, out, err = cli(*command, capsys=capsys)
        assert code == 0, err
        printed += out + err
    artifact = re.search(r"^([0-9a-f]{24})\s", printed, re.M)
    assert artifact is not None
    code, out, err = cli("artifacts", "show", artifact.group(1), capsys=capsys)
    assert code == 0 and "URI           memory://user:***@bucket/" in out
    assert SECRET not in printed + out + err


LABELS = """
from zenml_bridge import pipeline, step


@step
def echo(label: str) -> str:
    return label


@pipeline
def labels(label: str = "x") -> None:
    echo(label=label)
"""


def test_parameters_holding_a_url_with_credentials_are_shown_redacted(
    stores_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "zb_safety_labels.py").write_text(LABELS, encoding="utf-8")
    src = f"{tmp_path / 'zb_safety_labels.py'}:labels"
    source = f"postgresql://ops:{SECRET}@db/zb"
    code, out, err = cli("run", src, "-p", f"label={source}", capsys=capsys)
    assert code == 0, err
    first = re.search(r"Run (\S+) completed", out).group(1)  # type: ignore[union-attr]
    code, out, err = cli("run", src, "-p", "label=plain", capsys=capsys)
    assert code == 0, err
    printed = ""
    for command in (("runs", "show", first), ("runs", "compare", first, "latest")):
        code, out, err = cli(*command, capsys=capsys)
        assert code == 0, err
        printed += out + err
    assert "postgresql://ops:***@db/zb" in printed and SECRET not in printed


def test_entrypoint_errors_never_print_credentials(
    stores_env: dict[str, str], tmp_path: Path
) -> None:
    path, sha = write_ir(zb_pipes.chain, tmp_path)
    result = run_step(f"memory://user:{SECRET}@bucket/missing.json", sha, "load", "r1")
    assert result.returncode == 2, result.stderr
    assert "memory://user:***@bucket/missing.json" in result.stderr
    assert SECRET not in result.stdout + result.stderr


# -- 15: the entrypoint validates the IR before it touches the stores -------------------------


def _hostile_ir(folder: Path, change: str) -> tuple[str, str]:
    data = json.loads(ir.dumps(zb_pipes.chain.to_ir()))
    load = next(s for s in data["steps"] if s["name"] == "load")
    if change == "output":
        load["outputs"][0]["name"] = "../../../../outside"
    else:
        load["name"] = "../../../../outside"
    text = json.dumps(data, sort_keys=True)
    sha = ir.sha256(ir.loads(text))  # a consistent document: the hash check alone passes it
    path = folder / f"hostile-{change}.json"
    path.write_text(text, encoding="utf-8")
    return str(path), sha


@pytest.mark.parametrize("change", ["output", "step"])
def test_entrypoint_refuses_path_unsafe_names_before_touching_the_stores(
    stores_env: dict[str, str], tmp_path: Path, change: str
) -> None:
    path, sha = _hostile_ir(tmp_path, change)
    step = "load" if change == "output" else "../../../../outside"
    result = run_step(path, sha, step, "r1")
    assert result.returncode == 2, result.stdout + result.stderr
    _no_traceback(result.stdout, result.stderr)
    what = "output name '../../../../outside'" if change == "output" else "name '../../../../"
    assert what in result.stderr and "cannot be used" in result.stderr
    # Nothing was opened, written or deleted: no store, nothing outside the artifact root.
    assert not (tmp_path / "metadata.db").exists()
    assert not (tmp_path / "artifacts").exists()
    assert not (tmp_path.parent / "outside").exists() and not (tmp_path / "outside").exists()


# -- 15: code archives are bounded, their manifest and sha256 checked --------------------------


def _archive(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _publish(folder: Path, data: bytes) -> tuple[str, str]:
    path = folder / "code.tar.gz"
    path.write_bytes(data)
    return str(path), hashlib.sha256(data).hexdigest()


MANIFEST_OK = json.dumps({"format": 1, "sys_path": ["."]}).encode()


def _cache_is_empty(cache: Path) -> bool:
    return not cache.exists() or not any(cache.iterdir())


def test_an_archive_that_inflates_beyond_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8 MiB of zeros packs to a few KiB: the "1 MiB unpacked to 1 GiB" archive, scaled down.
    data = _archive({MANIFEST: MANIFEST_OK, "data.bin": bytes(8 * 2**20)})
    assert len(data) < 64 * 2**10
    uri, sha = _publish(tmp_path, data)
    monkeypatch.setenv("ZENML_BRIDGE_CODE_ARCHIVE_MAX_BYTES", str(2**20))
    with pytest.raises(
        BridgeError,
        match=re.escape(
            f"The code archive holds more than {2**20} bytes, over the limit of {2**20} "
            "(ZENML_BRIDGE_CODE_ARCHIVE_MAX_BYTES)."
        ),
    ):
        ensure_code(uri, sha, cache_dir=tmp_path / "cache")
    assert _cache_is_empty(tmp_path / "cache")


def test_file_count_and_path_length_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = {MANIFEST: MANIFEST_OK, **{f"m{i}.py": b"x = 1\n" for i in range(5)}}
    uri, sha = _publish(tmp_path, _archive(entries))
    monkeypatch.setenv("ZENML_BRIDGE_CODE_ARCHIVE_MAX_FILES", "3")
    with pytest.raises(BridgeError, match=re.escape("holds more than 3 files, over the limit")):
        ensure_code(uri, sha, cache_dir=tmp_path / "cache")
    monkeypatch.delenv("ZENML_BRIDGE_CODE_ARCHIVE_MAX_FILES")
    long_name = "d/" * 40 + "m.py"
    uri, sha = _publish(tmp_path, _archive({MANIFEST: MANIFEST_OK, long_name: b"x = 1\n"}))
    monkeypatch.setenv("ZENML_BRIDGE_CODE_ARCHIVE_MAX_PATH", "50")
    with pytest.raises(BridgeError, match=re.escape(f"a path of {len(long_name)} characters")):
        ensure_code(uri, sha, cache_dir=tmp_path / "cache")
    assert _cache_is_empty(tmp_path / "cache")
    # The compile side refuses what workers would refuse.
    (tmp_path / "src").mkdir()
    for i in range(5):
        (tmp_path / "src" / f"m{i}.py").write_text("x = 1\n")
    monkeypatch.setenv("ZENML_BRIDGE_CODE_ARCHIVE_MAX_FILES", "3")
    with pytest.raises(BridgeError, match=re.escape("workers unpack at most 3")):
        pack(tmp_path / "src", [f"m{i}.py" for i in range(5)], ["."])
    monkeypatch.setenv("ZENML_BRIDGE_CODE_ARCHIVE_MAX_FILES", "lots")
    with pytest.raises(
        BridgeError,
        match=re.escape("ZENML_BRIDGE_CODE_ARCHIVE_MAX_FILES='lots' is not a whole number"),
    ):
        ensure_code(uri, sha, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("entry", ["/usr/lib", "../..", "pkg/../../..", "missing"])
def test_the_manifest_cannot_put_outside_folders_on_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    manifest = json.dumps({"format": 1, "sys_path": [entry]}).encode()
    uri, sha = _publish(tmp_path, _archive({MANIFEST: manifest, "pkg/m.py": b"x = 1\n"}))
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = list(sys.path)
    with pytest.raises(
        BridgeError,
        match=re.escape(f"puts {entry!r} on sys.path, which is not a folder inside the archive."),
    ):
        ensure_code(uri, sha, cache_dir=tmp_path / "cache")
    assert sys.path == before
    assert _cache_is_empty(tmp_path / "cache")


def test_a_malformed_manifest_is_refused(tmp_path: Path) -> None:
    for manifest in (b"[]", b'{"format": 1, "sys_path": "."}', b"{", b'{"format": 9}'):
        uri, sha = _publish(tmp_path, _archive({MANIFEST: manifest, "m.py": b"x = 1\n"}))
        with pytest.raises(BridgeError, match=re.escape(f"has no valid {MANIFEST}")):
            ensure_code(uri, sha, cache_dir=tmp_path / "cache")
    assert _cache_is_empty(tmp_path / "cache")


@pytest.mark.parametrize("sha", ["../../../../tmp/x", "A" * 64, "0" * 63, ""])
def test_code_archive_sha256_must_be_a_sha256(tmp_path: Path, sha: str) -> None:
    uri, _ = _publish(tmp_path, _archive({MANIFEST: MANIFEST_OK}))
    with pytest.raises(BridgeError, match=re.escape("is not a sha256 (64 lower-case hex digits)")):
        ensure_code(uri, sha, cache_dir=tmp_path / "cache")
    assert _cache_is_empty(tmp_path / "cache")


def test_entrypoint_refuses_a_bad_code_archive_sha256(
    stores_env: dict[str, str], tmp_path: Path
) -> None:
    path, sha = write_ir(zb_pipes.chain, tmp_path)
    uri, _ = _publish(tmp_path, _archive({MANIFEST: MANIFEST_OK}))
    args = [sys.executable, "-m", "zenml_bridge.entrypoint", "run-step", "--ir", path]
    args += ["--ir-sha256", sha, "--step", "load", "--run-id", "r1", "--code-archive", uri]
    args += ["--code-archive-sha256", "../../x"]
    result = subprocess.run(args, env=child_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    assert "--code-archive-sha256 '../../x' is not a sha256" in result.stderr
    _no_traceback(result.stdout, result.stderr)


def test_a_full_code_cache_is_a_message(tmp_path: Path, small_disk: Path) -> None:
    # 1 MiB of incompressible bytes: a small archive file, too big for the 256 KiB cache disk.
    uri, sha = _publish(tmp_path, _archive({MANIFEST: MANIFEST_OK, "blob.bin": os.urandom(2**20)}))
    with pytest.raises(
        BridgeError,
        match=re.escape(f"No space left to unpack the code archive into {small_disk / sha}."),
    ):
        ensure_code(uri, sha, cache_dir=small_disk)
    assert list(small_disk.iterdir()) == []  # the temporary folder is gone too


def test_valid_archives_still_unpack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "zb_safety_mod.py").write_text("VALUE = 7\n")
    archive = pack(tmp_path / "src", ["pkg/zb_safety_mod.py"], ["pkg"])
    uri, sha = _publish(tmp_path, archive.data)
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = ensure_code(uri, sha, cache_dir=tmp_path / "cache")
    assert folder == (tmp_path / "cache" / sha / "pkg").resolve() and sys.path[0] == str(folder)
    assert code_archive.manifest_paths(tmp_path / "cache" / sha) == [str(folder)]


# -- 19: a full artifact disk ------------------------------------------------------------------


def test_a_full_artifact_disk_is_a_message_and_exit_2(
    stores_env: dict[str, str],
    small_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", str(small_disk))
    code, out, err = cli("run", f"{PIPES}:chain", "-p", "rows=100000", capsys=capsys)
    assert code == 2, out + err
    _no_traceback(out, err)
    assert "Error: No space left on device writing an artifact into" in err
    assert "ZENML_BRIDGE_ARTIFACT_ROOT" in err
    leftovers = [p for p in small_disk.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
    code, out, err = cli("runs", "show", "latest", capsys=capsys)
    assert code == 0 and "failed" in out  # recorded as failed, not left running


# -- 19: damaged stores -----------------------------------------------------------------------


def test_garbage_json_in_a_metadata_row_is_a_message(
    metadata_url: str,
    stores_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sqlalchemy as sa

    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", metadata_url)
    run = zb_pipes.chain(rows=3)
    from zenml_bridge.stores.connect import create_engine

    engine = create_engine(metadata_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE zb_runs SET parameters = '{garbage'"))
            conn.execute(sa.text("UPDATE zb_step_runs SET outputs = 'not json'"))
    finally:
        engine.dispose()
    for command in (("runs", "list"), ("runs", "show", run.run_id)):
        code, out, err = cli(*command, capsys=capsys)
        assert code == 2, out + err
        _no_traceback(out, err)
        assert (
            "The metadata store holds a damaged record: column 'parameters' of the row with "
            f"run_id '{run.run_id}' is not valid JSON"
        ) in err
        assert "Repair or delete that row" in err


def test_a_damaged_cache_entry_is_a_miss_and_is_replaced(
    metadata_url: str, stores_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    from zenml_bridge.stores.connect import create_engine

    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", metadata_url)
    zb_pipes.chain(rows=3)
    engine = create_engine(metadata_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE zb_cache SET outputs = '{garbage'"))
    finally:
        engine.dispose()
    again = zb_pipes.chain(rows=3)
    assert again.status == "completed"
    assert {s.status for s in again.steps.values()} == {"completed"}  # misses, not a traceback
    third = zb_pipes.chain(rows=3)
    assert {s.status for s in third.steps.values()} == {"cached"}  # the entries were replaced
    assert third.steps["total"].outputs["sum"].load() == 6


def test_a_file_that_is_not_sqlite_is_a_message(
    stores_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "metadata.db"
    database.write_bytes(b"this is not a database\n" * 400)
    for command in (("runs", "list"), ("artifacts", "list"), ("run", f"{PIPES}:chain")):
        code, out, err = cli(*command, capsys=capsys)
        assert code == 2, out + err
        _no_traceback(out, err)
        assert (
            f"The metadata store {database} is not a usable SQLite database (file is not a "
            "database). Move the file away"
        ) in err
    assert database.read_bytes() == b"this is not a database\n" * 400  # left as it was


@pytest.mark.parametrize("checkpointed", [True, False])
def test_a_read_only_sqlite_store_can_still_be_listed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    checkpointed: bool,
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    url = f"sqlite:///{store / 'metadata.db'}"
    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", url)
    monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    # Recorded by another process, as by an earlier `zenml-bridge run`: this one holds no
    # connection opened before the store became read-only.
    made = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "run", f"{PIPES}:chain", "-p", "rows=3"],
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    run_id = re.search(r"Run (\S+) completed", made.stdout).group(1)  # type: ignore[union-attr]
    if not checkpointed:  # a WAL that still holds the newest commits (a writer still open)
        import sqlite3

        keep = sqlite3.connect(store / "metadata.db")
        keep.execute("PRAGMA wal_autocheckpoint = 0")
        keep.execute("UPDATE zb_runs SET pipeline = pipeline")
        keep.commit()
        assert (store / "metadata.db-wal").stat().st_size > 0
    mounts = _make_read_only(store)
    try:
        assert not os.access(store / "metadata.db", os.W_OK)
        code, out, err = cli("runs", "list", capsys=capsys)
        assert code == 0, err
        assert run_id in out
        code, out, err = cli("runs", "show", run_id, capsys=capsys)
        assert code == 0 and "total.sum" in out, err
        code, out, err = cli("artifacts", "list", capsys=capsys)
        assert code == 0 and "load.output" in out, err
        # A command that must write gets one clear message.
        code, out, err = cli("run", f"{PIPES}:chain", capsys=capsys)
        assert code == 2, out + err
        _no_traceback(out, err)
        assert f"The SQLite metadata store {store / 'metadata.db'} is read-only here" in err
    finally:
        for folder in mounts:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        if not ROOT:
            store.chmod(0o755)
        if not checkpointed:
            keep.close()


def test_a_read_only_store_without_tables_is_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    store = tmp_path / "store"
    store.mkdir()
    sqlite3.connect(store / "metadata.db").execute("CREATE TABLE other (x)").connection.close()
    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", f"sqlite:///{store / 'metadata.db'}")
    monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    mounts = _make_read_only(store)
    try:
        code, out, err = cli("runs", "list", capsys=capsys)
        assert code == 2, out + err
        _no_traceback(out, err)
        assert (
            f"The SQLite metadata store {store / 'metadata.db'} is read-only here and holds no "
            "runs yet; creating or upgrading its tables needs a write."
        ) in err
    finally:
        for folder in mounts:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        if not ROOT:
            store.chmod(0o755)


# -- 19: `zenml-bridge runs list | head -1` ---------------------------------------------------


def test_a_closed_pipe_is_not_a_traceback(stores_env: dict[str, str]) -> None:
    zb_pipes.chain(rows=3)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line, as `| head -0` would leave it
    try:
        result = subprocess.run(
            [sys.executable, "-m", "zenml_bridge", "runs", "list"],
            stdout=write,
            stderr=subprocess.PIPE,
            env=child_env(),
            text=True,
            check=False,
        )
    finally:
        os.close(write)
    assert result.stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError"
    assert result.returncode == 141
