"""Content hashes computed while an artifact is written (issue 16, item 3).

A file a materializer writes through the store's filesystem is hashed as it is written and never
read back; a load in the same process does not hash it again while its stat is unchanged; any
change is still caught before the bytes are deserialized; hashes recorded by earlier versions
(scheme 1) still verify.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from zenml_bridge.errors import BridgeError
from zenml_bridge.materializers import get, select
from zenml_bridge.stores import artifacts, hashing
from zenml_bridge.stores.artifacts import ArtifactStore


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the files the store hashes by reading them."""
    seen: list[str] = []
    original = hashing.hash_file
    monkeypatch.setattr(hashing, "hash_file", lambda path: seen.append(path) or original(path))
    return seen


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(rng.random((50_000, 4)), columns=list("abcd"))


def _write_frame(store: ArtifactStore, df: pd.DataFrame, run: str = "r") -> tuple[str, str]:
    materializer = select(df)
    uri, sha, _ = store.write(
        "p", run, "s", "o", lambda folder, fs: materializer.save(df, folder, fs)
    )
    return uri, sha


def test_a_new_frame_is_hashed_while_written_and_not_read_back(
    tmp_path: Path, reads: list[str]
) -> None:
    store = ArtifactStore(str(tmp_path))
    df = _frame()
    uri, sha = _write_frame(store, df)
    assert reads == []  # nothing was read back to hash it
    assert sha == artifacts._hash_local(uri)[0]  # the hash of the bytes on disk
    reads.clear()
    back = store.read(uri, sha, get("pandas.dataframe").load)
    assert reads == []  # this process wrote it and nothing changed: not hashed again
    pd.testing.assert_frame_equal(back, df)


def test_a_change_after_writing_is_caught_before_loading(tmp_path: Path, reads: list[str]) -> None:
    store = ArtifactStore(str(tmp_path))
    uri, sha = _write_frame(store, _frame())
    data = Path(uri, "data.arrow")
    raw = bytearray(data.read_bytes())
    raw[-100] ^= 0xFF  # same size, right after writing
    data.write_bytes(bytes(raw))
    loaded: list[str] = []
    with pytest.raises(BridgeError, match="is corrupted: its content sha256 is"):
        store.read(uri, sha, lambda folder, fs: loaded.append(folder))
    assert loaded == []  # refused before the loader saw the bytes
    assert reads == [str(data)]


def test_a_file_written_around_the_filesystem_is_hashed_by_reading(
    tmp_path: Path, reads: list[str]
) -> None:
    store = ArtifactStore(str(tmp_path))

    def save(folder: str, fs: Any) -> None:
        with fs.open(f"{folder}/a.bin", "wb") as f:  # hashed while written
            f.write(b"a" * 10)
        Path(folder, "b.bin").write_bytes(b"b" * 10)  # not through fs: read back
        with fs.open(f"{folder}/c.bin", "wb") as f:  # rewritten after closing: read back
            f.write(b"c" * 10)
        Path(folder, "c.bin").write_bytes(b"C" * 10)
        with fs.open(f"{folder}/d.bin", "wb") as f:  # a seek: not trusted, read back
            f.write(b"d" * 10)
            f.seek(0)
            f.write(b"D")

    uri, sha, size = store.write("p", "r", "s", "o", save)
    assert sorted(os.path.basename(p) for p in reads) == ["b.bin", "c.bin", "d.bin"]
    assert (sha, size) == artifacts._hash_local(uri)  # every file as it is on disk
    assert Path(uri, "d.bin").read_bytes() == b"D" + b"d" * 9


def test_hashes_recorded_by_earlier_versions_still_verify(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    df = _frame()
    uri, sha = _write_frame(store, df)
    old = artifacts._hash_local_v1(uri)  # what an earlier version recorded for these bytes
    assert old != sha
    artifacts._VERIFIED.clear()
    pd.testing.assert_frame_equal(store.read(uri, old, get("pandas.dataframe").load), df)
    assert store.verify_stamp(uri, old, {}) is None
    with pytest.raises(BridgeError, match="is corrupted"):
        store.read(uri, "0" * 64, get("pandas.dataframe").load)


def test_pickled_files_verify_under_both_schemes(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))

    def save(folder: str, fs: Any) -> None:
        with fs.open(f"{folder}/value.pkl", "wb") as f:
            pickle.dump({"x": 1}, f)

    uri, sha, _ = store.write("p", "r", "s", "o", save)
    files = store.read_files(uri, sha)
    assert pickle.loads(files["value.pkl"]) == {"x": 1}
    assert store.read_files(uri, hashing.bytes_digest_v1(files)) == files
    with pytest.raises(BridgeError, match="is corrupted"):
        store.read_files(uri, "1" * 64)


@pytest.mark.parametrize("codec", ["lz4", "zstd", "none"])
def test_compression_setting_round_trips_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    monkeypatch.setenv("ZENML_BRIDGE_ARROW_COMPRESSION", codec)
    store = ArtifactStore(str(tmp_path))
    df = pd.DataFrame({"i": np.arange(10_000) % 7, "s": ["ab", "c"] * 5_000})
    uri, sha = _write_frame(store, df)
    artifacts._VERIFIED.clear()  # verified by reading, as another process would
    pd.testing.assert_frame_equal(store.read(uri, sha, get("pandas.dataframe").load), df)
    import pyarrow as pa

    with pa.memory_map(str(Path(uri, "data.arrow"))) as source:
        reader = pa.ipc.open_file(source)
        batch = reader.get_batch(0)
        assert batch.num_rows == 10_000
    size = Path(uri, "data.arrow").stat().st_size
    if codec != "none":
        monkeypatch.delenv("ZENML_BRIDGE_ARROW_COMPRESSION")
        plain_uri, _ = _write_frame(store, df, run="plain")
        assert size < Path(plain_uri, "data.arrow").stat().st_size


def test_unknown_compression_is_refused_with_the_choices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZENML_BRIDGE_ARROW_COMPRESSION", "gzip")
    store = ArtifactStore(str(tmp_path))
    with pytest.raises(
        BridgeError, match=r"ZENML_BRIDGE_ARROW_COMPRESSION='gzip'.*none, lz4, zstd"
    ):
        _write_frame(store, _frame())
    assert list(Path(tmp_path, "p", "r", "s").iterdir()) == []  # nothing half-written
