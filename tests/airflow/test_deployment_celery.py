"""Generated DAGs on a real Airflow 3 with CeleryExecutor: Redis broker, two workers.

The workers get the store URLs in their environment (PostgreSQL for metadata, a shared folder
for artifacts), which win over the local defaults the compile baked into the DAG. Pytest tears
the LocalExecutor deployment of test_deployment.py down before this module starts one.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deployment import Deployment, deployment
from test_deployment import AIRFLOW_BIN, Project, _local_outputs, _outputs, _run, our_run_id

from zenml_bridge.runtime import load_run
from zenml_bridge.stores.metadata import MetadataStore

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


# -- CeleryExecutor ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def celery_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, str, Path]]:
    """Two Celery workers that record into PostgreSQL (the store URL from their environment)."""
    import sqlalchemy as sa

    root = tmp_path_factory.mktemp("af3-celery")
    home = root / "home"
    home.mkdir()
    schema = f"zb_af_{hashlib.sha256(str(root).encode()).hexdigest()[:10]}"
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    metadata_url = (
        f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    )
    artifacts = root / "shared-artifacts"
    try:
        started = time.monotonic()
        with deployment(
            root,
            AIRFLOW_BIN,
            "CeleryExecutor",
            HOME=str(home),
            ZENML_BRIDGE_METADATA_URL=metadata_url,
            ZENML_BRIDGE_ARTIFACT_ROOT=str(artifacts),
        ) as site:
            print(f"CeleryExecutor deployment up in {time.monotonic() - started:.0f}s")
            yield site, metadata_url, artifacts
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_celery_workers_give_the_same_results_lineage_and_cache(
    celery_site: tuple[Deployment, str, Path], tmp_path: Path
) -> None:
    site, metadata_url, artifacts = celery_site
    project = Project(site.root / "project", site.dags, site.root / "home")
    project.compile("diamond")  # bakes the project's SQLite in; the workers' variables win
    site.wait_for_dag("diamond")
    run_id, state = _run(site, "diamond", {"rows": 8, "label": "celery"})
    assert state == "success", site.task_states("diamond", run_id)
    settings = project.settings(metadata_url, artifacts)
    run = load_run(our_run_id("diamond", run_id), settings)
    assert run.status == "completed"
    assert _outputs(run) == _local_outputs(project, tmp_path, {"rows": 8, "label": "celery"})
    store = MetadataStore(metadata_url)
    source_output = run.steps["source"].outputs["output"]
    consumers = {(c["step"], c["input"]) for c in store.consumers(source_output.artifact_id)}
    assert consumers == {("evens", "values"), ("odds", "values")}
    assert MetadataStore(project.metadata_url).list_runs() == []  # overridden by the workers
    received = sum(
        len(re.findall(r"Task \S+\[[0-9a-f-]+\] received", path.read_text(errors="replace")))
        for path in site.logs.glob("celery-worker-*.log")
    )
    assert received == 4, site.log_tails()

    again_id, state = _run(site, "diamond", {"rows": 8, "label": "celery"})
    assert state == "success"
    again = load_run(our_run_id("diamond", again_id), settings)
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert _outputs(again) == _outputs(run)
