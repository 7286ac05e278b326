"""The stores on SQLAlchemy 1.4 (what Airflow 2 pins) and 2.x: driver choice and column types.

The whole store and runtime suites run on both (`tox -e runtime` and `tox -e runtime-sa14`);
these cases pin what differs between the two versions.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from zenml_bridge.stores.connect import SA14, parse_url
from zenml_bridge.stores.metadata import MetadataStore

PG_DRIVER = "postgresql+psycopg2" if SA14 else "postgresql+psycopg"


@pytest.mark.parametrize(
    "url",
    ["postgresql://u@h:5432/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db"],
)
def test_postgres_urls_get_the_driver_this_sqlalchemy_has(url: str) -> None:
    # SQLAlchemy 1.4 has no psycopg 3 dialect: the same URLs must work there through psycopg2.
    assert parse_url(url).drivername == PG_DRIVER


def test_explicit_drivers_are_kept() -> None:
    assert parse_url("postgresql+psycopg2://u@h/db").drivername == "postgresql+psycopg2"
    assert parse_url("mysql://u@h/db").drivername == "mysql+pymysql"
    assert parse_url("mariadb://u@h/db").drivername == "mariadb+pymysql"


def test_engines_are_2_0_style(sqlite_url: str) -> None:
    store = MetadataStore(sqlite_url)
    with store.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        # Explicit commit/rollback exist only on 2.0-style connections (future=True on 1.4).
        conn.rollback()
    if SA14:
        assert type(store.engine.pool).__name__ == "QueuePool"  # as 2.x does for files


def test_timestamps_keep_double_precision(metadata_url: str) -> None:
    # sa.Double on 2.x, FLOAT(53) on 1.4: both must store a full 8-byte float everywhere.
    store = MetadataStore(metadata_url)
    started = 1_763_799_999.123456
    store.record_step(
        run_id="r1",
        step="load",
        status="completed",
        outputs={},
        started_at=started,
        ended_at=started + 0.000123,
    )
    row = store.step_runs("r1")["load"]
    assert row["started_at"] == started
    assert row["ended_at"] == started + 0.000123
    assert isinstance(row["started_at"], float)
    before = time.time()
    store.begin_run(
        run_id="r1",
        pipeline="p",
        ir_sha256="a" * 64,
        ir_json=lambda: "{}",
        parameters={},
    )
    run = store.get_run("r1")
    assert run is not None
    assert before <= run["started_at"] <= time.time()
