"""Dashboard and comparison with many runs: response times beside a bare SELECT of the same rows.

Fills a fresh store with N runs (default 10,000) by running the dashboard tests' 4-step
pipeline once for real and copying its rows (runs, step runs, artifacts, lineage) under new run
ids, then measures, each as the median of ``--repeat`` calls:

- ``runs list``: the CLI command in-process (20 newest runs), output discarded;
- ``compare_runs`` of 5 runs (what ``runs compare`` and the dashboard's comparison compute);
- the dashboard over HTTP (its real server on 127.0.0.1, a free port): the run list (first page
  and page 100), a run page, a step page and a comparison page of 5 runs;

each beside a baseline: a bare ``SELECT`` of the same rows with the sqlite3 module (the newest
50 runs; the run and its step rows; 5 runs and their step rows). Target: under 200 ms each.
Run: ``python benchmarks/bench_dashboard.py`` (``--runs 1000`` for a quick look; ``--url
postgresql://...`` to fill and measure a PostgreSQL store instead of SQLite, whose baseline is
then the same SELECT through SQLAlchemy).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PIPES = ROOT / "tests" / "dashboard"
TARGET_MS = 200.0


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm: first-call imports and template compilation are not what a user waits for
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def seed_run(home: Path, url: str) -> str:
    env = dict(
        os.environ,
        ZENML_BRIDGE_METADATA_URL=url,
        ZENML_BRIDGE_ARTIFACT_ROOT=str(home / "artifacts"),
        ZENML_BRIDGE_HOME=str(home / "zb_home"),
        PYTHONPATH=str(PIPES),
    )
    out = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "run", "zb_dash_pipes:scored", "-p", "rows=3"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split("Run ", 1)[1].split()[0]


def fill(store: Any, seed: str, n: int) -> list[str]:
    """Copy the seed run's rows under n-1 new ids (one transaction per 1,000 runs)."""
    import sqlalchemy as sa

    t = store.t
    with store.engine.connect() as conn:
        run = dict(conn.execute(sa.select(t.runs).where(t.runs.c.run_id == seed)).one()._mapping)
        steps = [
            dict(r._mapping)
            for r in conn.execute(sa.select(t.step_runs).where(t.step_runs.c.run_id == seed))
        ]
        arts = [
            dict(r._mapping)
            for r in conn.execute(sa.select(t.artifacts).where(t.artifacts.c.run_id == seed))
        ]
        cons = [
            dict(r._mapping)
            for r in conn.execute(sa.select(t.consumers).where(t.consumers.c.run_id == seed))
        ]
    ids = [seed]
    statuses = ("completed", "completed", "completed", "failed", "cached")
    for start in range(1, n, 1000):
        batch: dict[str, list[dict[str, Any]]] = {"runs": [], "steps": [], "arts": [], "cons": []}
        for i in range(start, min(start + 1000, n)):
            run_id = f"{seed}-{i:05d}"
            ids.append(run_id)
            art_ids = {a["artifact_id"]: f"{a['artifact_id'][:40]}{i:08d}" for a in arts}
            batch["runs"].append(
                {
                    **run,
                    "run_id": run_id,
                    "started_at": run["started_at"] - i,
                    "ended_at": run["ended_at"] - i,
                    "status": "failed" if statuses[i % 5] == "failed" else "completed",
                }
            )
            for s in steps:
                outputs = s["outputs"]
                for old, new in art_ids.items():
                    outputs = outputs.replace(old, new)
                batch["steps"].append({**s, "run_id": run_id, "outputs": outputs})
            batch["arts"] += [
                {**a, "run_id": run_id, "artifact_id": art_ids[a["artifact_id"]]} for a in arts
            ]
            batch["cons"] += [
                {**c, "run_id": run_id, "artifact_id": art_ids.get(c["artifact_id"], "x")}
                for c in cons
            ]
        with store.engine.begin() as conn:
            conn.execute(t.runs.insert(), batch["runs"])
            conn.execute(t.step_runs.insert(), batch["steps"])
            conn.execute(t.artifacts.insert(), batch["arts"])
            conn.execute(t.consumers.insert(), batch["cons"])
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--url", help="a PostgreSQL/MariaDB URL (default: a temp SQLite file)")
    args = parser.parse_args()

    from zenml_bridge.cli.main import main as cli
    from zenml_bridge.compare import compare_runs
    from zenml_bridge.dashboard.data import open_store
    from zenml_bridge.dashboard.server import Dashboard, make_server
    from zenml_bridge.stores.metadata import MetadataStore

    with tempfile.TemporaryDirectory(prefix="zb-bench-dash-") as tmp:
        home = Path(tmp)
        url = args.url or f"sqlite:///{home / 'metadata.db'}"
        writable = MetadataStore(url)
        if args.url:
            writable.drop_tables()
            writable = MetadataStore(url)
        started = time.perf_counter()
        seed = seed_run(home, url)
        ids = fill(writable, seed, args.runs)
        fill_s = time.perf_counter() - started
        os.environ["ZENML_BRIDGE_METADATA_URL"] = url
        os.environ["ZENML_BRIDGE_ARTIFACT_ROOT"] = str(home / "artifacts")
        os.environ["ZENML_BRIDGE_HOME"] = str(home / "zb_home")

        store = open_store(url)
        server = make_server(Dashboard(store), "127.0.0.1", 0, log_requests=False)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_address[1]}"

        def get(path: str) -> Callable[[], None]:
            def call() -> None:
                with urllib.request.urlopen(base + path, timeout=60) as response:
                    response.read()
                    assert response.status == 200, (path, response.status)

            return call

        five = ids[:5]
        if url.startswith("sqlite"):
            import sqlite3

            raw = sqlite3.connect(f"file:{home / 'metadata.db'}?mode=ro", uri=True)

            def bare(sql: str, params: tuple[Any, ...] = ()) -> Callable[[], None]:
                return lambda: raw.execute(sql, params).fetchall()

        else:
            import sqlalchemy as sa

            def bare(sql: str, params: tuple[Any, ...] = ()) -> Callable[[], None]:
                pieces = sql.split("?")
                text = sa.text("".join(f"{p}:p{i}" for i, p in enumerate(pieces[:-1])) + pieces[-1])
                values = {f"p{i}": v for i, v in enumerate(params)}

                def call() -> None:
                    with store.engine.connect() as conn:
                        conn.execute(text, values).fetchall()

                return call

        marks = ",".join("?" * 5)
        baselines = {
            "list": bare("SELECT * FROM zb_runs ORDER BY started_at DESC LIMIT 50"),
            "deep": bare("SELECT * FROM zb_runs ORDER BY started_at DESC LIMIT 50 OFFSET 4950"),
            "run": bare(
                "SELECT * FROM zb_runs r JOIN zb_step_runs s ON s.run_id = r.run_id "
                "WHERE r.run_id = ?",
                (ids[1],),
            ),
            "five": bare(
                f"SELECT * FROM zb_runs r JOIN zb_step_runs s ON s.run_id = r.run_id "
                f"WHERE r.run_id IN ({marks})",
                tuple(five),
            ),
        }

        def runs_list() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli(["runs", "list"]) == 0

        compare_query = "&".join(f"run={r}" for r in five)
        rows = [
            ("runs list (CLI, 20 newest)", runs_list, "list"),
            ("compare_runs of 5 runs", lambda: compare_runs(store, five), "five"),
            ("dashboard: run list, page 1", get("/"), "list"),
            ("dashboard: run list, page 100", get("/?page=100"), "deep"),
            ("dashboard: run list, status=failed", get("/?status=failed"), "list"),
            ("dashboard: run page", get(f"/runs/{ids[1]}"), "run"),
            ("dashboard: step page", get(f"/runs/{ids[1]}/steps/score"), "run"),
            ("dashboard: compare 5 runs", get(f"/compare?{compare_query}"), "five"),
        ]
        print(f"store: {url.split('?')[0]}  runs: {len(ids):,}  (filled in {fill_s:.1f} s)")
        print(f"{'measure':38} {'median ms':>10} {'bare SELECT ms':>15} {'target ms':>10}")
        for name, fn, key in rows:
            ms = median_ms(fn, args.repeat)
            base_ms = median_ms(baselines[key], args.repeat)
            flag = "" if ms < TARGET_MS else "  over target"
            print(f"{name:38} {ms:10.1f} {base_ms:15.2f} {TARGET_MS:10.0f}{flag}")
        server.shutdown()
        server.server_close()
        if args.url:
            writable.drop_tables()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
