"""One runner per backend: run a case of the behaviour table, return its Outcome.

Each run gets its own stores (a SQLite metadata store and an artifact folder in ``folder``), so
the run read back is the only one there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tracker_site
from behaviour import PIPES, Case, Outcome, read_outcome

KFP_RUNNER = """
import json, sys
from kfp import components, local
# raise_on_error=False: a failing or stopped task ends the pipeline; the test reads our stores.
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2],
           raise_on_error=False)
pipeline = components.load_component_from_file(sys.argv[1])
pipeline(**json.loads(sys.argv[3]))
"""


_SITE: list[Path] = []


def site() -> Path:
    """The folder holding the test tracker's distribution (made once per process)."""
    if not _SITE:
        _SITE.append(tracker_site.install(Path(tempfile.mkdtemp(prefix="zb-conformance-"))))
    return _SITE[0]


def with_site(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the tracker's distribution on PYTHONPATH (for every process it starts)."""
    path = os.pathsep.join(p for p in (str(site()), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path}


@contextmanager
def tracker_installed() -> Iterator[None]:
    """The tracker's distribution on this process's path for a block (then removed again, so
    other tests in the session see the plugin table they expect)."""
    from zenml_bridge import plugins

    sys.path.insert(0, str(site()))
    plugins.refresh()
    try:
        yield
    finally:
        sys.path.remove(str(site()))
        plugins.refresh()


def stores(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        tracker_site.ENV: str(folder / "tracks.jsonl"),
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{folder / 'metadata.db'}",
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(folder / "artifacts"),
        "ZENML_BRIDGE_HOME": str(folder / "home"),
        "ZENML_BRIDGE_CODE_CACHE": str(folder / "code-cache"),
    }


def outcome_of(env: dict[str, str]) -> Outcome:
    outcome = read_outcome(env["ZENML_BRIDGE_METADATA_URL"], env["ZENML_BRIDGE_ARTIFACT_ROOT"])
    outcome.tracked = tracker_site.records(Path(env[tracker_site.ENV]))
    return outcome


def run(args: list[str], env: dict[str, str], cwd: Path, ok: bool = True) -> str:
    done = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=900,
        start_new_session=True,
    )  # fmt: skip
    output = f"{args[:5]}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    if ok:
        assert done.returncode == 0, output
    return output


def run_local(case: Case, folder: Path) -> Outcome:
    """The local runner, in this process (stores of its own)."""
    from zenml_bridge.cli.source import load_pipeline
    from zenml_bridge.config import Settings
    from zenml_bridge.runtime import run_pipeline

    env = stores(folder)
    settings = Settings(
        metadata_url=env["ZENML_BRIDGE_METADATA_URL"],
        artifact_root=env["ZENML_BRIDGE_ARTIFACT_ROOT"],
        experiment_tracker={**tracker_site.BLOCK, "path": env[tracker_site.ENV]},
        home=folder,
    )
    pipeline = load_pipeline(f"{PIPES}:{case.pipeline}")
    with tracker_installed():
        run_pipeline(pipeline, dict(case.params), settings=settings, raise_on_failure=False)
    return outcome_of(env)


def compile_args(case: Case, target: str, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "zenml_bridge", "compile", f"{PIPES}:{case.pipeline}",
        "--target", target, "--out", str(out), *extra,
    ]  # fmt: skip


class AirflowSite:
    """An Airflow home and dags folder; every case's DAG is compiled into it once."""

    def __init__(self, root: Path, python: str) -> None:
        self.root = root
        self.python = python
        self.dags = root / "dags"
        self.home = root / "airflow"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            PYTHONWARNINGS="ignore",
        )
        # Airflow and zenml-bridge in one environment: tasks run its `python`.
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        for name in ("ZENML_BRIDGE_PYTHON", "ZENML_BRIDGE_AIRFLOW_PYTHON"):
            env.pop(name, None)
        self.env = with_site(env)
        tracker_site.project_config(root)  # the compile publishes the stack's tracker
        self.python_option = [] if python == sys.executable else ["--python", sys.executable]

    def prepare(self, cases: tuple[Case, ...]) -> None:
        compile_env = {**self.env, **stores(self.root / "compile")}
        for case in cases:
            run(compile_args(case, "airflow", self.dags, *self.python_option), compile_env,
                self.root)  # fmt: skip
        run([self.python, "-m", "airflow", "db", "migrate"], self.env, self.root)

    def run(self, case: Case, folder: Path) -> Outcome:
        """``airflow dags test`` with the case's parameters as conf, into the case's stores."""
        env = {**self.env, **stores(folder)}
        conf = json.dumps(case.params)
        log = run([self.python, "-m", "airflow", "dags", "test", case.pipeline, "-c", conf],
                  env, self.root, ok=False)  # fmt: skip
        try:
            return outcome_of(env)
        except Exception as exc:
            raise AssertionError(f"no run recorded by Airflow:\n{log}") from exc


def run_kubeflow(case: Case, folder: Path) -> Outcome:
    """Compile with the lightweight executor and run the YAML with kfp.local."""
    env = with_site({**os.environ, **stores(folder)})
    tracker_site.project_config(folder)  # the compile publishes the stack's tracker
    out = folder / f"{case.pipeline}.yaml"
    run(compile_args(case, "kubeflow", out, "--executor", "lightweight"), env, folder)
    runner = folder / "run_kfp.py"
    runner.write_text(KFP_RUNNER, encoding="utf-8")
    elsewhere = folder / "elsewhere"  # not the project: code comes from the archive
    elsewhere.mkdir(exist_ok=True)
    log = run([sys.executable, str(runner), str(out), str(folder / "kfp-root"),
               json.dumps(case.params)], env, elsewhere, ok=False)  # fmt: skip
    try:
        return outcome_of(env)
    except Exception as exc:
        raise AssertionError(f"no run recorded by kfp.local:\n{log}") from exc


def reference(case: Case, folder: Path) -> Outcome:
    """The local run of a case that other backends' hashes are compared with."""
    return run_local(case, folder / "reference")


__all__ = ["Any", "AirflowSite", "reference", "run_kubeflow", "run_local"]
