"""The artifact store: atomic writes, content hashes, verification on load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from zenml_bridge.errors import BridgeError
from zenml_bridge.stores.artifacts import ArtifactStore, path_part


def _save(value: object):  # type: ignore[no-untyped-def]
    def save(folder: str, fs: object) -> None:
        with open(os.path.join(folder, "data.json"), "w") as handle:
            json.dump(value, handle)

    return save


def _load(folder: str, fs: object) -> object:
    with open(os.path.join(folder, "data.json")) as handle:
        return json.load(handle)


def test_write_read_and_layout(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "root"))
    uri, sha, size = store.write("training", "run:1+x", "load", "output", _save([1, 2]))
    assert uri == str(tmp_path / "root" / "training" / "run_1+x" / "load" / "output")
    assert size == len("[1, 2]")
    assert store.read(uri, sha, _load) == [1, 2]
    assert os.listdir(Path(uri).parent) == ["output"]  # no temporary folder left


def test_same_content_same_hash(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    _, first, _ = store.write("p", "r1", "s", "o", _save({"a": 1}))
    _, second, _ = store.write("p", "r2", "s", "o", _save({"a": 1}))
    _, third, _ = store.write("p", "r3", "s", "o", _save({"a": 2}))
    assert first == second != third


def test_corrupted_artifact_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    uri, sha, _ = store.write("p", "r", "s", "o", _save([1]))
    Path(uri, "data.json").write_text("[2]")
    with pytest.raises(BridgeError, match="is corrupted: its content sha256 is"):
        store.read(uri, sha, _load)


def test_missing_artifact(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    with pytest.raises(BridgeError, match="does not exist"):
        store.read(str(tmp_path / "nope"), "0" * 64, _load)


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))

    def broken(folder: str, fs: object) -> None:
        Path(folder, "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.write("p", "r", "s", "o", broken)
    assert os.listdir(tmp_path / "p" / "r" / "s") == []


def test_stale_temporary_folders_are_removed(tmp_path: Path) -> None:
    from zenml_bridge.stores.artifacts import _HOST

    store = ArtifactStore(str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    # Left by a writer of this machine that no longer runs (a live writer's is kept).
    stale = tmp_path / "p" / "r" / "s" / f".o.tmp-{_HOST}-{gone.stdout.strip()}-deadbeef0000"
    stale.mkdir(parents=True)
    # Left by an older release (no writer in its name): removed once older than a day.
    legacy = tmp_path / "p" / "r" / "s" / ".o.tmp-deadbeef"
    legacy.mkdir()
    os.utime(legacy, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    store.write("p", "r", "s", "o", _save(1))
    assert sorted(os.listdir(tmp_path / "p" / "r" / "s")) == ["o"]


def test_unwritable_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = ArtifactStore(str(blocker / "artifacts"))
    with pytest.raises(BridgeError, match="cannot hold artifacts"):
        store.check_writable()


def test_memory_filesystem_root() -> None:
    store = ArtifactStore("memory://zb-test-root")

    def save(folder: str, fs: object) -> None:
        fs.pipe_file(f"{folder}/data.json", b"[1, 2, 3]")  # type: ignore[attr-defined]

    def load(folder: str, fs: object) -> object:
        return json.loads(fs.cat_file(f"{folder}/data.json"))  # type: ignore[attr-defined]

    uri, sha, size = store.write("p", "r", "s", "o", save)
    assert uri.startswith("memory://") and size == 9
    assert store.read(uri, sha, load) == [1, 2, 3]


def test_path_part() -> None:
    assert path_part("manual__2026-11-22T06:49:22+00:00") == "manual__2026-11-22T06_49_22+00_00"
    assert path_part("../etc") == "_etc"


def test_same_size_change_is_detected_even_right_after_writing(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    uri, sha, _ = store.write("p", "r", "s", "o", _save([1]))
    assert store.read(uri, sha, _load) == [1]  # verified once, remembered
    data = Path(uri, "data.json")
    data.write_text("[2]")  # same size; mtime/ctime change
    os.utime(data, ns=(0, 0))  # even with an old mtime, the ctime still changes
    with pytest.raises(BridgeError, match="is corrupted"):
        store.read(uri, sha, _load)


def test_racy_same_size_rewrite_is_detected(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    uri, sha, _ = store.write("p", "r", "s", "o", _save([1]))
    Path(uri, "data.json").write_text("[2]")  # same size, within the same clock tick
    with pytest.raises(BridgeError, match="is corrupted"):
        store.read(uri, sha, _load)


def test_a_new_artifact_is_remembered_with_its_files_stats(tmp_path: Path) -> None:
    # The stats taken while hashing stand for a listing after the rename: the same signature.
    from zenml_bridge.stores.artifacts import _VERIFIED, _signature

    store = ArtifactStore(str(tmp_path))

    def save(folder: str, fs: Any) -> None:
        fs.makedirs(folder, exist_ok=True)
        with fs.open(f"{folder}/a.bin", "wb") as handle:
            handle.write(b"abc")
        Path(folder, "sub").mkdir()
        Path(folder, "sub", "b.txt").write_text("written around the filesystem")

    uri, sha, _ = store.write("p", "r", "s", "o", save)
    assert _VERIFIED[uri][1] == _signature(uri)
    assert _VERIFIED[uri][3] == frozenset({"a.bin"})
    assert store.read(uri, sha, lambda folder, fs: Path(folder, "sub", "b.txt").read_text()) == (
        "written around the filesystem"
    )


def test_stale_temporary_folders_are_removed_by_a_later_write_in_the_step_folder(
    tmp_path: Path,
) -> None:
    from zenml_bridge.stores.artifacts import _HOST

    store = ArtifactStore(str(tmp_path))
    store.write("p", "r", "s", "first", _save(1))  # creates the step folder: nothing to list
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / "p" / "r" / "s" / f".o.tmp-{_HOST}-{gone.stdout.strip()}-deadbeef0000"
    stale.mkdir()
    store.write("p", "r", "s", "o", _save(2))
    assert sorted(os.listdir(tmp_path / "p" / "r" / "s")) == ["first", "o"]
