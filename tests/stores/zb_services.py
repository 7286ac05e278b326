"""Real database services for the store and runtime tests (shared by both conftests).

PostgreSQL (127.0.0.1:5432, db test, user postgres) and MariaDB (127.0.0.1:3306, root, db test)
cases skip when the server is unreachable, and fail instead when ZENML_BRIDGE_REQUIRE_SERVICES=1
(set by .ci/run). Each test gets a fresh PostgreSQL schema / MariaDB database, dropped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from zenml_bridge.stores.metadata import close_connections

# Driver chosen as for users' URLs (psycopg 3 on SQLAlchemy 2, psycopg2 on 1.4).
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
MY_ADMIN = "mysql://root@127.0.0.1:3306/test"


def _unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    if os.environ.get("ZENML_BRIDGE_REQUIRE_SERVICES") == "1":
        pytest.fail(message + "; ZENML_BRIDGE_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(message)


def _admin_engine(url: str, what: str):  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from zenml_bridge.stores.connect import parse_url

    engine = sa.create_engine(
        parse_url(url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        _unavailable(what, exc)
    return engine


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema (dropped after the test)."""
    import sqlalchemy as sa

    engine = _admin_engine(PG_ADMIN, "PostgreSQL at 127.0.0.1:5432")
    schema = f"zb_t_{uuid.uuid4().hex[:10]}"
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
        yield url
    finally:
        close_connections(url)  # this process's idle connections to the dropped schema
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A URL of a fresh MariaDB database (dropped after the test)."""
    import sqlalchemy as sa

    engine = _admin_engine(MY_ADMIN, "MariaDB at 127.0.0.1:3306")
    database = f"zb_t_{uuid.uuid4().hex[:10]}"
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {database}"))
    try:
        url = f"mysql://root@127.0.0.1:3306/{database}"
        yield url
    finally:
        close_connections(url)
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {database}"))
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'metadata.db'}"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def metadata_url(request: pytest.FixtureRequest) -> str:
    """The metadata store suite runs once per database."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "postgres_url", "mariadb": "mariadb_url"}
    return str(request.getfixturevalue(fixture[request.param]))


@pytest.fixture
def stores_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the stores at tmp_path (SQLite + folder) and run from an empty folder."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "ZENML_BRIDGE_METADATA_URL": f"sqlite:///{tmp_path / 'metadata.db'}",
        "ZENML_BRIDGE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ZENML_BRIDGE_HOME": str(home),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(work)
    return env
