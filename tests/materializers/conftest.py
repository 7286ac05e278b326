"""Shared helpers: store a value through the registry into a real folder and read it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import pytest

from zenml_bridge.materializers import get, select


class RoundTrip:
    """``rt(value)`` selects, saves into a fresh folder, loads with ``get(name)``."""

    def __init__(self, root: Path, fs: Any, prefix: str = "") -> None:
        self.root, self.fs, self.prefix, self.count = root, fs, prefix, 0
        self.last_folder = ""
        self.last_name = ""

    def __call__(self, value: Any, *, allow_pickle: bool = False) -> Any:
        self.count += 1
        folder = f"{self.prefix}{self.root}/a{self.count}"
        self.fs.makedirs(folder, exist_ok=True)  # the artifact store creates it in real runs
        materializer = select(value, allow_pickle=allow_pickle)
        materializer.save(value, folder, self.fs)
        self.last_folder, self.last_name = folder, materializer.name
        return get(materializer.name).load(folder, self.fs)

    def files(self) -> dict[str, bytes]:
        """Relative path -> bytes of the files in the last folder."""
        out = {}
        for path in sorted(self.fs.find(self.last_folder)):
            rel = path.rstrip("/").split("/")[-1]
            out[rel] = self.fs.cat_file(path)
        return out


@pytest.fixture
def rt(tmp_path: Path) -> RoundTrip:
    return RoundTrip(tmp_path, fsspec.filesystem("file"))


@pytest.fixture
def rt_remote(tmp_path: Path) -> Any:
    """A round trip through fsspec's in-memory filesystem (a non-local store, like S3)."""
    fs = fsspec.filesystem("memory")
    root = f"/zb-test-{tmp_path.name}"
    yield RoundTrip(Path(root), fs)
    if fs.exists(root):
        fs.rm(root, recursive=True)
