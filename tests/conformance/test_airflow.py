"""The behaviour table on Airflow: each case's DAG run with ``airflow dags test``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from behaviour import CASES, Case, check
from runners import AirflowSite, reference

pytestmark = [pytest.mark.conformance_airflow, pytest.mark.airflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> AirflowSite:
    python = os.environ.get("ZENML_BRIDGE_AIRFLOW_PYTHON") or sys.executable
    if python == sys.executable and importlib.util.find_spec("airflow.models") is None:
        pytest.skip("Airflow is not installed here: run `tox -e airflow3 -- tests/conformance`")
    site = AirflowSite(tmp_path_factory.mktemp("conformance-airflow"), python)
    site.prepare(CASES)
    return site


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_airflow(case: Case, site: AirflowSite, tmp_path: Path) -> None:
    outcome = site.run(case, tmp_path / "airflow")
    check(case, outcome, reference(case, tmp_path))
