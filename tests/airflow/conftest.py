"""Shared helpers of the Airflow backend tests.

Airflow runs in this interpreter (tox envs ``airflow3`` and ``airflow2``: Airflow and zenml-bridge
in one environment, as a platform team installs them) or in the one named by
``ZENML_BRIDGE_AIRFLOW_PYTHON``. Steps always run in this interpreter, which has zenml-bridge: the
DAG names it with ``--python``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
GOLDEN = HERE.parent / "golden"
sys.path.insert(0, str(GOLDEN))  # golden_support and the golden pipelines package
sys.path.insert(0, str(HERE))  # the flows package of the end-to-end tests


def airflow_python() -> str | None:
    """The interpreter that has Airflow, or None when there is none."""
    named = os.environ.get("ZENML_BRIDGE_AIRFLOW_PYTHON")
    if named:
        return named
    spec = importlib.util.find_spec("airflow")
    # tests/golden/airflow (on sys.path's golden folder) is a namespace package, not Airflow.
    return sys.executable if spec and spec.origin not in (None, "namespace") else None


@pytest.fixture(scope="session")
def af_python() -> str:
    found = airflow_python()
    if found is None:
        pytest.skip("Airflow is not installed here: run `tox -e airflow3` or `tox -e airflow2`")
    return found


def airflow_env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    """Environment of an Airflow command with its own home, dags folder and stores."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONWARNINGS="ignore",
        **extra,
    )
    return env


def probe(python: str, dags: Path, home: Path, render: bool = False) -> dict[str, Any]:
    """Load ``dags`` with Airflow's DagBag in ``python``; the result of dagbag_probe.py."""
    command = [python, str(HERE / "dagbag_probe.py"), str(dags)] + (["--render"] if render else [])
    result = subprocess.run(
        command, env=airflow_env(home, dags), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("ZENML_BRIDGE_PROBE "))
    return json.loads(line.split(" ", 1)[1])  # type: ignore[no-any-return]
