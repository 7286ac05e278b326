"""Code archives: deterministic packing, what is left out, publishing, and unpacking on workers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from zenml_bridge import ir
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import code_archive
from zenml_bridge.runtime.code_archive import (
    MANIFEST,
    build_code_archive,
    ensure_code,
    pack,
    project_files,
    publish_code_archive,
    publish_ir,
)

PIPELINE_SOURCE = textwrap.dedent(
    """
    from zenml_bridge import pipeline, step
    from zbdemo_helpers.numbers import triple


    @step
    def make() -> int:
        return triple(2)


    @pipeline
    def tiny() -> None:
        make()
    """
)


def _project(root: Path, fake_git: bool = True) -> Path:
    """A small project: a package of steps, a helper package, and things never packed."""
    (root / "src" / "zbdemo_flows").mkdir(parents=True)
    (root / "src" / "zbdemo_flows" / "__init__.py").write_text("", encoding="utf-8")
    (root / "src" / "zbdemo_flows" / "tiny.py").write_text(PIPELINE_SOURCE, encoding="utf-8")
    (root / "src" / "zbdemo_helpers").mkdir()
    (root / "src" / "zbdemo_helpers" / "__init__.py").write_text("", encoding="utf-8")
    (root / "src" / "zbdemo_helpers" / "numbers.py").write_text(
        "def triple(x):\n    return 3 * x\n", encoding="utf-8"
    )
    never = [".venv/pyvenv.cfg", "src/zbdemo_flows/__pycache__/tiny.pyc", "env2/pyvenv.cfg"]
    never += [".zenml_bridge/metadata.db", "env2/lib/x.py"] + [".git/config"] * fake_git
    for relative in never:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("x", encoding="utf-8")
    return root


def _load(root: Path) -> ir.Pipeline:
    """The pipeline's IR, with its modules still loaded (archives find files through them)."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("zbdemo_flows", "zbdemo_helpers")]:
        del sys.modules[name]
    sys.path.insert(0, str(root / "src"))
    try:
        from zbdemo_flows.tiny import tiny  # type: ignore[import-not-found]

        return tiny.to_ir()  # type: ignore[no-any-return]
    finally:
        sys.path.remove(str(root / "src"))


def test_walk_leaves_out_vcs_envs_caches_and_stores(tmp_path: Path) -> None:
    root = _project(tmp_path)
    assert project_files(root) == [
        "src/zbdemo_flows/__init__.py",
        "src/zbdemo_flows/tiny.py",
        "src/zbdemo_helpers/__init__.py",
        "src/zbdemo_helpers/numbers.py",
    ]


def test_same_files_give_the_same_bytes(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    pipeline = _load(root)
    first = build_code_archive(pipeline)
    os.utime(root / "src" / "zbdemo_flows" / "tiny.py", (1, 1))  # times do not matter
    second = build_code_archive(pipeline)
    assert first.data == second.data and first.sha256 == second.sha256
    # Outside a git repository: the folder the pipeline's package is imported from.
    assert first.sys_path == (".",) and first.root == (root / "src").resolve()
    assert first.files == (
        "zbdemo_flows/__init__.py",
        "zbdemo_flows/tiny.py",
        "zbdemo_helpers/__init__.py",
        "zbdemo_helpers/numbers.py",
    )
    (root / "src" / "zbdemo_helpers" / "numbers.py").write_text(
        "def triple(x):\n    return x * 3\n"
    )
    assert build_code_archive(pipeline).sha256 != first.sha256  # content does


def test_git_projects_pack_what_git_would_track(tmp_path: Path) -> None:
    root = _project(tmp_path / "repo", fake_git=False)
    (root / ".gitignore").write_text("big.bin\n", encoding="utf-8")
    (root / "big.bin").write_bytes(b"0" * 1000)
    (root / "notes.txt").write_text("untracked but not ignored", encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "src", ".gitignore"], check=True)
    archive = build_code_archive(_load(root))
    assert archive.root == root.resolve() and archive.sys_path == ("src",)
    assert "big.bin" not in archive.files
    assert {"notes.txt", ".gitignore", "src/zbdemo_flows/tiny.py"} <= set(archive.files)
    assert not [f for f in archive.files if f.startswith((".git/", ".venv/", "env2/"))]


def test_publish_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    pipeline = _load(root)
    uri, sha = publish_ir(pipeline, str(tmp_path / "art"))
    assert uri == str(tmp_path / "art" / ".zenml_bridge" / "ir" / f"{sha}.json")
    assert ir.loads(Path(uri).read_text(encoding="utf-8"), expected_sha256=sha) == pipeline
    assert publish_ir(pipeline, str(tmp_path / "art")) == (uri, sha)
    archive = build_code_archive(pipeline)
    code_uri = publish_code_archive(archive, f"file://{tmp_path / 'art'}")
    assert Path(code_uri).read_bytes() == archive.data
    leftovers = [p for p in (tmp_path / "art").rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_ensure_code_unpacks_once_and_imports_from_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path / "p")
    archive = build_code_archive(_load(root))
    uri = publish_code_archive(archive, str(tmp_path / "art"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = ensure_code(uri, archive.sha256, cache_dir=tmp_path / "cache")
    assert folder == (tmp_path / "cache" / archive.sha256).resolve()
    assert sys.path[0] == str(folder)
    assert (
        folder / "zbdemo_helpers" / "numbers.py"
    ).read_text() == "def triple(x):\n    return 3 * x\n"
    marker = folder / "marker"
    marker.write_text("kept", encoding="utf-8")
    ensure_code(uri, archive.sha256, cache_dir=tmp_path / "cache")  # no second unpack
    assert marker.exists()


def _ensure_in_child(args: tuple[str, str, str]) -> str:
    return str(ensure_code(*args))


def test_concurrent_workers_unpack_safely(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    archive = build_code_archive(_load(root))
    uri = publish_code_archive(archive, str(tmp_path / "art"))
    job = (uri, archive.sha256, str(tmp_path / "cache"))
    with ProcessPoolExecutor(max_workers=4) as pool:
        paths = set(pool.map(_ensure_in_child, [job] * 8))
    assert len(paths) == 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [archive.sha256]


def test_a_changed_archive_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    archive = build_code_archive(_load(root))
    uri = publish_code_archive(archive, str(tmp_path / "art"))
    Path(uri).write_bytes(archive.data + b"x")
    with pytest.raises(BridgeError, match="was changed after compiling"):
        ensure_code(uri, archive.sha256, cache_dir=tmp_path / "cache")
    with pytest.raises(BridgeError, match="does not exist"):
        ensure_code(str(tmp_path / "nope.tar.gz"), archive.sha256, cache_dir=tmp_path / "c")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_unsafe_entries_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    path = tmp_path / "evil.tar.gz"
    path.write_bytes(buffer.getvalue())
    sha = code_archive.hashlib.sha256(buffer.getvalue()).hexdigest()
    with pytest.raises(BridgeError, match="unsafe entry '../escape.py'"):
        ensure_code(str(path), sha, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "escape.py").exists()


def test_manifest_names_the_import_roots(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    archive = pack(tmp_path, ["a.py"], ["."])
    with tarfile.open(fileobj=io.BytesIO(archive.data), mode="r:gz") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
    assert names == [MANIFEST, "a.py"]
    assert manifest == {"format": 1, "sys_path": ["."]}
