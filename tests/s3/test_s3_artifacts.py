"""An ``s3://`` artifact root against moto's S3 server on 127.0.0.1 (issue 16, item 4).

A pipeline runs end to end with its artifacts on S3; what crosses the wire is counted by a proxy
in front of the server: a write uploads each artifact once (no download to hash it, no
server-side copy), a first read in a new process downloads it once, a read from the local cache
moves nothing; a changed object or a damaged cache entry is caught before loading.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from moto_s3 import CountingProxy, MotoS3, make_bucket, s3_env

BUCKET = "zb-artifacts"

PIPE = textwrap.dedent(
    """
    import numpy as np
    import pandas as pd
    from zenml_bridge import pipeline, step


    @step
    def make(rows: int = 200_000) -> pd.DataFrame:
        rng = np.random.default_rng(0)
        return pd.DataFrame({"x": rng.random(rows), "k": np.arange(rows) % 5})


    @step
    def double(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(x=df["x"] * 2)


    @step
    def total(df: pd.DataFrame) -> float:
        return float(df["x"].sum())


    @pipeline
    def frames(rows: int = 200_000) -> None:
        total(double(make(rows=rows)))
    """
)

LOAD = textwrap.dedent(
    """
    import json, sys
    from zenml_bridge.runtime.records import load_run
    sys.path.insert(0, sys.argv[1])
    sys.path.insert(0, sys.argv[3])
    from moto_s3 import fetch_counts
    run = load_run(sys.argv[2])
    before = fetch_counts(sys.argv[4])
    df = run.steps["double"].outputs["output"].load()
    first = fetch_counts(sys.argv[4])
    df_again = run.steps["double"].outputs["output"].load()
    second = fetch_counts(sys.argv[4])
    print(json.dumps({
        "rows": len(df), "x": float(df["x"].sum()), "same": bool(df.equals(df_again)),
        "dtypes": [str(t) for t in df.dtypes], "counts": [before, first, second],
        "total": run.steps["total"].outputs["output"].load(),
    }))
    """
)


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    log = Path(os.environ.get("TMPDIR", "/tmp"), f"zb-moto-{os.getpid()}.log")
    server = MotoS3(str(log))
    proxy = None
    try:
        proxy = CountingProxy(server.url)
        make_bucket(server.url, BUCKET)
        yield {"server": server, "proxy": proxy}
    finally:
        if proxy is not None:
            proxy.close()
        server.close()


@pytest.fixture
def project(tmp_path: Path, s3: dict[str, Any]) -> dict[str, Any]:
    (tmp_path / "s3pipe.py").write_text(PIPE)
    env = {
        **os.environ,
        **s3_env(s3["proxy"].url),
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'metadata.db'}",
        "ZENML_BRIDGE_ARTIFACT_ROOT": f"s3://{BUCKET}/{tmp_path.name}",
        "ZENML_BRIDGE_CACHE_DIR": str(tmp_path / "cache-writer"),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p
        ),
    }
    return {"dir": tmp_path, "env": env, "proxy": s3["proxy"]}


def _run(project: dict[str, Any]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "run", "s3pipe.py:frames", "--no-cache"],
        cwd=project["dir"],
        env=project["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return _last_run_id(project)


def _last_run_id(project: dict[str, Any]) -> str:
    code = (
        "from zenml_bridge.stores.metadata import MetadataStore; import os; "
        "s = MetadataStore(os.environ['ZENML_BRIDGE_METADATA_URL']); "
        "print(s.list_runs()[0]['run_id'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=project["env"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def _load(project: dict[str, Any], run_id: str, cache: str) -> dict[str, Any]:
    env = {**project["env"], "ZENML_BRIDGE_CACHE_DIR": str(project["dir"] / cache)}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD,
            str(project["dir"]),
            run_id,
            str(Path(__file__).parent),
            project["proxy"].url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _artifact_bytes(project: dict[str, Any]) -> int:
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=project["proxy"].url, key="testing", secret="testing")
    return sum(fs.du(f"{BUCKET}/{project['dir'].name}", total=False).values())


def test_pipeline_on_s3_uploads_once_and_reads_from_the_local_cache(
    project: dict[str, Any],
) -> None:
    proxy = project["proxy"]
    proxy.reset()
    run_id = _run(project)
    wrote = proxy.counts()
    stored = _artifact_bytes(project)
    # One upload per artifact: what was sent is what is stored (plus nothing), no download of
    # the artifacts to hash them (responses are listings and upload receipts only).
    assert stored > 3_000_000
    assert stored <= wrote["sent"] <= stored * 1.01
    assert wrote["received"] < stored / 20
    assert "POST" not in wrote["requests"] or wrote["requests"]["POST"] <= 2  # no multipart copy

    first = _load(project, run_id, "cache-reader")
    assert first["rows"] == 200_000 and first["same"]
    assert first["dtypes"] == ["float64", "int64"]
    assert first["total"] == pytest.approx(first["x"])
    before, after_first, after_second = first["counts"]
    downloaded = after_first["received"] - before["received"]
    double_size = _size_of(project, "double")
    assert double_size <= downloaded <= double_size * 1.05 + 20_000  # once, plus a listing
    assert after_second == after_first  # the second load: no request at all

    again = _load(project, run_id, "cache-reader")  # a new process, the same local cache
    before, after_first, _ = again["counts"]
    assert after_first == before  # nothing moved: served from the cache after a local check


def _size_of(project: dict[str, Any], step: str) -> int:
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=project["proxy"].url, key="testing", secret="testing")
    found = fs.find(f"{BUCKET}/{project['dir'].name}", detail=True)
    return sum(info["size"] for key, info in found.items() if f"/{step}/output/" in key)


def test_a_changed_object_is_refused_and_a_damaged_cache_entry_fetched_again(
    project: dict[str, Any],
) -> None:
    run_id = _run(project)
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=project["proxy"].url, key="testing", secret="testing")
    found = fs.find(f"{BUCKET}/{project['dir'].name}")
    data = next(key for key in found if "/double/output/" in key)

    # A damaged local cache entry is hashed, removed and downloaded again.
    assert _load(project, run_id, "cache-a")["rows"] == 200_000
    entries = [p for p in (project["dir"] / "cache-a").iterdir() if not p.name.startswith(".")]
    for entry in entries:
        for file in entry.rglob("*.arrow"):
            raw = bytearray(file.read_bytes())
            raw[-50] ^= 0xFF
            file.write_bytes(bytes(raw))
    assert _load(project, run_id, "cache-a")["rows"] == 200_000

    # A changed object on the store: refused before it is deserialized, with the fix.
    raw = bytearray(fs.cat_file(data))
    raw[-50] ^= 0xFF
    fs.pipe_file(data, bytes(raw))
    env = {**project["env"], "ZENML_BRIDGE_CACHE_DIR": str(project["dir"] / "cache-b")}
    code = (
        "import sys; from zenml_bridge.runtime.records import load_run; "
        f"load_run({run_id!r}).steps['double'].outputs['output'].load()"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "is corrupted: its content sha256 is" in out.stderr
    assert "re-run the step that produced it" in out.stderr
    leftovers = list((project["dir"] / "cache-b").iterdir())
    assert not [p for p in leftovers if not p.name.startswith(".")]  # nothing cached


def test_cache_size_bound_keeps_the_newest_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml_bridge.stores import remote_cache

    monkeypatch.setenv("ZENML_BRIDGE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("ZENML_BRIDGE_CACHE_MAX_BYTES", "2500")
    for i, name in enumerate(("a" * 64, "b" * 64, "c" * 64)):
        temp = remote_cache.new_temp()
        Path(temp, "f.bin").write_bytes(b"x" * 1000)
        path = remote_cache.adopt(temp, name)
        os.utime(path, ns=(i * 10**9, i * 10**9))  # a, then b, then c last used
    remote_cache.evict()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b" * 64, "c" * 64]
    monkeypatch.setenv("ZENML_BRIDGE_CACHE_MAX_BYTES", "lots")
    from zenml_bridge.errors import BridgeError

    with pytest.raises(BridgeError, match="ZENML_BRIDGE_CACHE_MAX_BYTES='lots' is not a number"):
        remote_cache.evict()


def test_unwritable_default_cache_falls_back_to_the_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml_bridge.stores import remote_cache

    blocked = tmp_path / "home-file"
    blocked.write_text("not a folder")  # the default cache cannot be created under a file
    monkeypatch.delenv("ZENML_BRIDGE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(remote_cache, "_FALLBACK", None)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    temp = remote_cache.new_temp()
    assert temp.startswith(str(tmp_path / "tmp" / "zenml-bridge-artifacts-"))
    monkeypatch.setenv("ZENML_BRIDGE_CACHE_DIR", str(blocked / "x"))
    from zenml_bridge.errors import BridgeError

    with pytest.raises(BridgeError, match="Set ZENML_BRIDGE_CACHE_DIR to a writable folder"):
        remote_cache.new_temp()
