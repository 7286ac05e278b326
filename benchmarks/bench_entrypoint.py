"""Entrypoint benchmark: what one orchestrator task costs, beside its baselines in the same run.

Rows (whole processes, interpreter start included, bytecode compiled, median of ``--repeat``;
the commands are interleaved so that load changes hit every row alike):

- ``python -c pass``: a bare interpreter.
- ``python -c "import step_module"``: the step module, which imports pandas and scikit-learn.
- entrypoint, cache hit: ``python -m zenml_bridge.entrypoint run-step`` of a step whose result
  is cached (a new run id each time, so the step is looked up in the cache, verified and
  recorded ``cached``).
- entrypoint, executed: the same trivial step with ``--no-cache`` (it runs: module import, code
  check, one JSON artifact); its overhead is the time beyond ``import step_module``.

Stores: SQLite in a temporary folder, and PostgreSQL (a fresh schema in the ``test`` database at
127.0.0.1:5432, dropped afterwards) when it is reachable. A last line says whether a hit
imported pandas (``-X importtime``). Run: ``python benchmarks/bench_entrypoint.py``
(``--repeat N``, ``--no-postgres``). Set ``PYTHONPATH`` to compare another checkout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

STEP_MODULE = textwrap.dedent(
    """
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from zenml_bridge import pipeline, step


    @step
    def trivial(n: int = 3) -> int:
        return n + 1


    @pipeline
    def flow(n: int = 3) -> None:
        trivial(n=n)
    """
)

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _env(folder: Path, metadata_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # what users get: cached bytecode
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH")) if p)
    env["ZENML_BRIDGE_METADATA_URL"] = metadata_url
    env["ZENML_BRIDGE_ARTIFACT_ROOT"] = str(folder / "artifacts")
    env["ZENML_BRIDGE_HOME"] = str(folder / "home")
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stdout}\n{done.stderr}")
    return done


def _timed(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    _run(args, env, cwd)
    return time.perf_counter() - start


@contextmanager
def _postgres() -> Iterator[str | None]:
    """A URL on a fresh schema, or None when PostgreSQL is not reachable."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        print(f"(PostgreSQL not reachable: {type(exc).__name__}; its rows are skipped)")
        yield None
        return
    try:
        yield f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def measure(folder: Path, metadata_url: str, repeat: int) -> dict[str, list[float]]:
    env = _env(folder, metadata_url)
    py = sys.executable
    ir_path = folder / "flow.json"
    sha = _run(
        [py, "-c", "import sys, bench_ep_steps as m\nfrom zenml_bridge import ir\n"
         "p = m.flow.to_ir(); open(sys.argv[1], 'w').write(ir.dumps(p)); print(ir.sha256(p))",
         str(ir_path)],
        env, folder,
    ).stdout.strip()  # fmt: skip

    def step(run_id: str, *extra: str) -> list[str]:
        return [py, "-m", "zenml_bridge.entrypoint", "run-step", "--ir", str(ir_path),
                "--ir-sha256", sha, "--step", "trivial", "--run-id", run_id, *extra]  # fmt: skip

    _run(step("seed"), env, folder)  # stores created, the result cached, bytecode written
    counter = iter(range(10**9))
    commands: dict[str, Callable[[], list[str]]] = {
        "python -c pass": lambda: [py, "-c", "pass"],
        "python -c 'import step_module'": lambda: [py, "-c", "import bench_ep_steps"],
        "entrypoint, cache hit": lambda: step(f"hit-{next(counter)}"),
        "entrypoint, executed (--no-cache)": lambda: step(f"run-{next(counter)}", "--no-cache"),
    }
    for make in commands.values():  # warm-up: page cache, bytecode
        _run(make(), env, folder)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, make in commands.items():
            times[name].append(_timed(make(), env, folder))
    probe = _run([py, "-X", "importtime", *step("probe")[1:]], env, folder)
    if "cached" not in probe.stdout:
        raise SystemExit(f"the probe run was not a cache hit: {probe.stdout}")
    imported = {line.rsplit("|", 1)[-1].strip() for line in probe.stderr.splitlines()}
    times["hit imports pandas"] = [float("pandas" in imported)]
    times["hit imports sklearn"] = [float("sklearn" in imported)]
    return times


def report(label: str, times: dict[str, list[float]]) -> None:
    median = {name: statistics.median(values) for name, values in times.items()}
    module = median["python -c 'import step_module'"]
    print(f"\n{label}")
    print(f"{'process':40} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, values in times.items():
        if name.startswith("hit imports"):
            continue
        print(f"{name:40} {median[name]:9.3f} {min(values):7.3f} {max(values):7.3f}")
    executed = median["entrypoint, executed (--no-cache)"]
    print(f"{'executed: overhead beyond import':40} {executed - module:9.3f}")
    print(
        f"a cache hit imports pandas: {'yes' if median['hit imports pandas'] else 'no'}, "
        f"scikit-learn: {'yes' if median['hit imports sklearn'] else 'no'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    import zenml_bridge

    print(
        f"zenml-bridge from {Path(zenml_bridge.__file__).parent}; Python "
        f"{sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="zb-bench-ep-") as tmp:
        folder = Path(tmp) / "sqlite"
        folder.mkdir()
        (folder / "bench_ep_steps.py").write_text(STEP_MODULE)
        report("SQLite", measure(folder, f"sqlite:///{folder / 'metadata.db'}", args.repeat))
        if not args.no_postgres:
            with _postgres() as url:
                if url is not None:
                    folder = Path(tmp) / "postgres"
                    folder.mkdir()
                    (folder / "bench_ep_steps.py").write_text(STEP_MODULE)
                    report("PostgreSQL", measure(folder, url, args.repeat))


if __name__ == "__main__":
    main()
