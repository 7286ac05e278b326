"""Bytes and requests per artifact write and read on an S3-compatible server on 127.0.0.1.

Starts moto's server (``moto[server]``; in its own process group, stopped at the end) behind
a counting proxy (tests/s3/moto_s3.py), and has s3fs write one artifact of --mb MB (random
``bytes``: incompressible) through ``ArtifactStore`` on ``s3://bench/<variant>``, then read it
in a new process (first read: empty local cache; second read in the same process), then in
another new process with the same local cache (a cached read). Each phase is a new process; the
proxy counts what crossed the wire. ``--before PATH`` measures another checkout (e.g. ``main``)
in the same run; without it the baseline is the figure of issue 16 (3x per write, 2x per read),
labelled as such.

    python benchmarks/bench_remote.py [--mb 100] [--before /path/to/main-checkout]

Needs ``moto[server]``, ``s3fs`` and ``boto3`` (``tox -e s3`` has them:
``.tox/s3/bin/python benchmarks/bench_remote.py``). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "s3"))

from moto_s3 import CountingProxy, MotoS3, make_bucket, s3_env  # noqa: E402

BUCKET = "bench-artifacts"

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, sys.argv[1])
    from moto_s3 import fetch_counts
    from zenml_bridge.materializers import get, select
    from zenml_bridge.stores.artifacts import ArtifactStore

    phase, root, proxy, mb = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    store = ArtifactStore(root)
    marks = [fetch_counts(proxy)]
    times = []
    if phase == "write":
        value = os.urandom(mb * 1_000_000)
        materializer = select(value)
        start = time.perf_counter()
        uri, sha, size = store.write(
            "bench", "run1", "make", "output",
            lambda folder, fs: materializer.save(value, folder, fs))
        times.append(time.perf_counter() - start)
        marks.append(fetch_counts(proxy))
        print(json.dumps({"uri": uri, "sha": sha, "size": size, "marks": marks, "times": times}))
    else:
        uri, sha, reads = sys.argv[6], sys.argv[7], int(sys.argv[8])
        for _ in range(reads):
            start = time.perf_counter()
            value = store.read(uri, sha, get("builtins.bytes").load)
            times.append(time.perf_counter() - start)
            assert len(value) == mb * 1_000_000
            marks.append(fetch_counts(proxy))
        print(json.dumps({"marks": marks, "times": times}))
    """
)


class ChildFailed(Exception):
    """A benchmark child exited with an error (its last line of output)."""


def child(env: dict[str, str], *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO / "tests" / "s3"), *args],
        env=env,
        cwd=tempfile.gettempdir(),  # not the checkout: PYTHONPATH chooses the code
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines() or ["(no output)"]
        raise ChildFailed(lines[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    methods = set(a["requests"]) | set(b["requests"])
    requests = {m: b["requests"].get(m, 0) - a["requests"].get(m, 0) for m in sorted(methods)}
    return {
        "sent": b["sent"] - a["sent"],
        "received": b["received"] - a["received"],
        "copies": b["copies"] - a["copies"],
        "requests": {m: n for m, n in requests.items() if n},
    }


def measure(name: str, checkout: Path, proxy: str, mb: int, tmp: Path) -> list[tuple[str, Any]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(s3_env(proxy))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(checkout), os.environ.get("PYTHONPATH")) if p
    )
    env["ZENML_BRIDGE_CACHE_DIR"] = str(tmp / f"cache-writer-{name}")
    root = f"s3://{BUCKET}/{name}-{int(time.time() * 1000)}"
    wrote = child(env, "write", root, proxy, str(mb))
    env["ZENML_BRIDGE_CACHE_DIR"] = str(tmp / f"cache-reader-{name}")
    first = child(env, "read", root, proxy, str(mb), wrote["uri"], wrote["sha"], "2")
    cached = child(env, "read", root, proxy, str(mb), wrote["uri"], wrote["sha"], "1")
    size = wrote["size"]
    rows = [
        ("write", delta(*wrote["marks"]), wrote["times"][0]),
        (
            "first read (new process, empty local cache)",
            delta(*first["marks"][:2]),
            first["times"][0],
        ),
        ("second read (same process)", delta(*first["marks"][1:3]), first["times"][1]),
        (
            "read in a new process, same local cache",
            delta(*cached["marks"][:2]),
            cached["times"][0],
        ),
    ]
    return [(label, (d, seconds, size)) for label, d, seconds in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="artifact size in MB")
    parser.add_argument("--before", help="another checkout to measure in the same run")
    args = parser.parse_args()

    server = MotoS3(os.path.join(tempfile.gettempdir(), f"bench-remote-moto-{os.getpid()}.log"))
    proxy = None
    try:
        proxy = CountingProxy(server.url)
        make_bucket(server.url, BUCKET)
        variants = [("after", REPO)]
        if args.before:
            variants.insert(0, ("before", Path(args.before).resolve()))
        results: dict[str, Any] = {}
        failed: dict[str, str] = {}
        with tempfile.TemporaryDirectory(prefix="bench_remote_") as tmp:
            for name, checkout in variants:
                try:
                    results[name] = measure(name, checkout, proxy.url, args.mb, Path(tmp))
                except ChildFailed as exc:
                    if name == "after":
                        raise SystemExit(f"benchmark child failed: {exc}") from None
                    failed[name] = str(exc)
    finally:
        if proxy is not None:
            proxy.close()
        server.close()

    issue = {
        "write": "3x (issue 16: upload, download to hash, server-side copy)",
        "first read (new process, empty local cache)": "2x (issue 16: hash + load download)",
        "second read (same process)": "2x (issue 16)",
        "read in a new process, same local cache": "2x (issue 16)",
    }
    print(
        f"one {args.mb} MB artifact (random bytes) on moto's S3 server, s3fs; bytes through "
        "a counting proxy; x = bytes moved / artifact size (server-side copies counted as "
        "one artifact size each)"
    )
    print(
        f"{'operation':46} {'variant':7} {'sent MB':>8} {'recv MB':>8} {'copies':>6} "
        f"{'x size':>6} {'s':>6}  requests | baseline"
    )
    for label in issue:
        for name in results:
            d, seconds, size = dict(results[name])[label]
            moved = d["sent"] + d["received"] + d["copies"] * size
            requests = " ".join(f"{m}:{n}" for m, n in d["requests"].items()) or "none"
            baseline = issue[label] if "before" not in results else ""
            print(
                f"{label:46} {name:7} {d['sent'] / 1e6:8.2f} {d['received'] / 1e6:8.2f} "
                f"{d['copies']:6d} {moved / size:6.2f} {seconds:6.2f}  {requests}"
                + (f" | {baseline}" if baseline else "")
            )
    for name, error in failed.items():
        print(f"{name}: failed ({error}); the baseline column holds the figures of issue 16")


if __name__ == "__main__":
    main()
