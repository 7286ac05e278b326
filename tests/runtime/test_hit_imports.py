"""A cache hit never imports the step's module (issue 16, item 1).

The step module imports ``zbh_marker``, which appends a line to the file named by
``ZBH_MARKER`` when it is imported. A cached re-run in a fresh process, through the entrypoint
and through ``run_pipeline``, must leave the file empty; a miss must write it. A step module
that registers its own materializer still gets a hit (its module is imported to learn the
materializer, then the hit is served). Runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zenml_bridge.stores.metadata import MetadataStore

MARKER = """
import os

path = os.environ.get("ZBH_MARKER")
if path:
    with open(path, "a") as out:
        out.write(__name__ + "\\n")
"""

STEPS = """
import fractions

import zbh_marker  # noqa: F401  (records that this module was imported)

from zenml_bridge import pipeline, step
from zenml_bridge.materializers import Materializer, register


@register
class FractionMaterializer(Materializer):
    name = "zbh.fraction"
    handles = ("fractions.Fraction",)

    def save(self, value, folder, fs):
        with fs.open(folder + "/value.txt", "w") as out:
            out.write(str(value))

    def load(self, folder, fs):
        with fs.open(folder + "/value.txt") as src:
            return fractions.Fraction(src.read())


@step
def make(rows: int = 3) -> list:
    return list(range(rows))


@step
def double(data: list) -> list:
    return [2 * x for x in data]


@step
def ratio(data: list) -> fractions.Fraction:
    return fractions.Fraction(sum(data), 7)


@pipeline
def flow(rows: int = 3) -> None:
    double(make(rows))


@pipeline
def custom(rows: int = 3) -> None:
    ratio(make(rows))
"""

RUN = """
import sys

from zenml_bridge import ir
from zenml_bridge.runtime import run_pipeline

pipeline_ir = ir.loads(open(sys.argv[1]).read())
run = run_pipeline(pipeline_ir, run_id=sys.argv[2])
print(",".join(f"{name}={step.status}" for name, step in sorted(run.steps.items())))
print("IMPORTED" if "zbh_steps" in sys.modules else "NOT-IMPORTED")
"""


@pytest.fixture
def project(
    tmp_path: Path, stores_env: dict[str, str], metadata_url: str
) -> tuple[Path, dict[str, str]]:
    """The step project in a folder and the environment of a fresh process using it."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "zbh_marker.py").write_text(textwrap.dedent(MARKER))
    (root / "zbh_steps.py").write_text(textwrap.dedent(STEPS))
    (root / "zbh_run.py").write_text(textwrap.dedent(RUN))
    env = dict(os.environ)
    env.update(stores_env)
    env["ZENML_BRIDGE_METADATA_URL"] = metadata_url
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    env["ZBH_MARKER"] = str(tmp_path / "marker.txt")
    return root, env


def _python(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _compile(root: Path, env: dict[str, str], pipeline: str) -> tuple[Path, str]:
    """The IR of ``zbh_steps.<pipeline>`` as a file, and its sha256."""
    script = (
        "import sys, zbh_steps\nfrom zenml_bridge import ir\n"
        f"p = zbh_steps.{pipeline}.to_ir()\n"
        "open(sys.argv[1], 'w').write(ir.dumps(p))\nprint(ir.sha256(p))\n"
    )
    ir_path = root.parent / f"{pipeline}.json"
    clean = {k: v for k, v in env.items() if k != "ZBH_MARKER"}
    sha = _python(clean, "-c", script, str(ir_path), cwd=root).stdout.strip()
    return ir_path, sha


def _imports(env: dict[str, str]) -> list[str]:
    """The imports of the step module recorded since the last call (then forgotten)."""
    path = Path(env["ZBH_MARKER"])
    if not path.exists():
        return []
    lines = path.read_text().split()
    path.unlink()
    return lines


def _entrypoint(
    env: dict[str, str], root: Path, ir_path: Path, sha: str, step: str, run_id: str
) -> subprocess.CompletedProcess[str]:
    return _python(
        env, "-m", "zenml_bridge.entrypoint", "run-step", "--ir", str(ir_path),
        "--ir-sha256", sha, "--step", step, "--run-id", run_id, cwd=root,
    )  # fmt: skip


def test_entrypoint_cache_hit_does_not_import_the_step_module(
    project: tuple[Path, dict[str, str]], metadata_url: str
) -> None:
    root, env = project
    ir_path, sha = _compile(root, env, "flow")
    for step in ("make", "double"):
        _entrypoint(env, root, ir_path, sha, step, "first")
    assert _imports(env) == ["zbh_marker", "zbh_marker"]  # a miss imports it (each process)

    for step in ("make", "double"):
        done = _entrypoint(env, root, ir_path, sha, step, "second")
        assert f"step '{step}' of run second cached" in done.stdout
    assert _imports(env) == []  # two hits, no import
    states = MetadataStore(metadata_url).step_runs("second")
    assert {name: row["status"] for name, row in states.items()} == {
        "make": "cached",
        "double": "cached",
    }


def test_run_pipeline_cache_hit_does_not_import_the_step_module(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, env = project
    ir_path, _ = _compile(root, env, "flow")
    first = _python(env, "zbh_run.py", str(ir_path), "first", cwd=root).stdout.split()
    assert first == ["double=completed,make=completed", "IMPORTED"]
    assert _imports(env) == ["zbh_marker"]

    second = _python(env, "zbh_run.py", str(ir_path), "second", cwd=root).stdout.split()
    assert second == ["double=cached,make=cached", "NOT-IMPORTED"]
    assert _imports(env) == []


def test_hit_with_a_materializer_registered_by_the_step_module(
    project: tuple[Path, dict[str, str]], metadata_url: str
) -> None:
    root, env = project
    ir_path, sha = _compile(root, env, "custom")
    for step in ("make", "ratio"):
        _entrypoint(env, root, ir_path, sha, step, "first")
    _imports(env)
    for step in ("make", "ratio"):
        done = _entrypoint(env, root, ir_path, sha, step, "second")
        assert f"step '{step}' of run second cached" in done.stdout, done.stderr
        assert "warning" not in done.stderr
    # make's hit needs no import; ratio's materializer is known only once its module ran
    assert _imports(env) == ["zbh_marker"]
    states = MetadataStore(metadata_url).step_runs("second")
    assert states["ratio"]["status"] == "cached"

    third = _python(env, "zbh_run.py", str(ir_path), "third", cwd=root).stdout.split()
    assert third == ["make=cached,ratio=cached", "IMPORTED"]
