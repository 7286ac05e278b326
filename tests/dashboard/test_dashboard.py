"""`zenml-bridge dashboard` served by its real process and read in headless Chromium.

Runs are made by the real CLI into a temporary SQLite store (and PostgreSQL), the dashboard is
started as its own process group on a free port, pages are driven through Playwright, and the
process group is stopped by the fixture, also when a test fails. Screenshots of the run page,
the step graph and the comparison page go to $ZENML_BRIDGE_SCREENSHOTS_DIR when set (docs:
`ZENML_BRIDGE_SCREENSHOTS_DIR=docs/images tox -e dashboard`), else to the test's temp folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import chromium_browser

from zenml_bridge.cli.main import main

if TYPE_CHECKING:
    from playwright.sync_api import Page
else:
    Page = Any

HERE = Path(__file__).parent
HOSTILE = '<img src=x onerror="window.__xss=1"></script><script>window.__xss=2</script>'
STEPS = ("load", "score", "report", "notify")


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    env: dict[str, str]
    runs: list[str]
    home: Path


def _env(home: Path, metadata_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ZENML_BRIDGE_METADATA_URL": metadata_url,
            "ZENML_BRIDGE_ARTIFACT_ROOT": str(home / "artifacts"),
            "ZENML_BRIDGE_HOME": str(home / "zb_home"),
            "PYTHONPATH": str(HERE),
        }
    )
    return env


def _run(
    env: dict[str, str], cwd: Path, *params: str, pipeline: str = "scored", ends: str = "completed"
) -> str:
    """One run of a test pipeline through the real CLI; returns its run id."""
    args = [arg for p in params for arg in ("-p", p)]
    out = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "run", f"zb_dash_pipes:{pipeline}", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    found = re.search(rf"Run (\S+) {ends}", out.stdout)
    assert found, out.stdout
    return found.group(1)


def _start(env: dict[str, str], cwd: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "zenml_bridge", "dashboard", "--port", "0", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the fixture stops all of it
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        found = re.search(r"Serving on (http://127\.0\.0\.1:\d+/)", line)
        if found:
            return process, found.group(1)
    _stop(process)
    raise AssertionError("the dashboard did not start:\n" + "".join(lines) + _stderr(process))


def _stderr(process: subprocess.Popen[str]) -> str:
    return process.stderr.read() if process.stderr else ""


def _stop(process: subprocess.Popen[str]) -> int:
    """Ctrl-C to the whole process group, then SIGKILL if it is still there after 20 s."""
    try:
        os.killpg(process.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout=20)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module's tests (each test gets its own page)."""
    with chromium_browser() as browser:
        yield browser


@pytest.fixture
def page(chromium: Any) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Three runs in a SQLite store: A rows=3, B rows=5 + hostile label, C = A again (cached)."""
    home = tmp_path_factory.mktemp("dash")
    env = _env(home, f"sqlite:///{home / 'metadata.db'}")
    runs = [
        _run(env, home, "rows=3"),
        _run(env, home, "rows=5", f"label={HOSTILE}"),
        _run(env, home, "rows=3"),
    ]
    process, url = _start(env, home)
    try:
        yield Served(url=url, process=process, env=env, runs=runs, home=home)
    finally:
        _stop(process)


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ZENML_BRIDGE_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _graph_node_count(page: Page) -> int:
    page.wait_for_selector("#graph[data-nodes]")
    return int(page.get_attribute("#graph", "data-nodes"))


def test_runs_page_lists_runs_made_in_the_test_and_filters(page: Page, served: Served) -> None:
    page.goto(served.url)
    assert page.title() == "Runs · zenml-bridge"
    text = page.inner_text("main")
    for run_id in served.runs:
        assert run_id in text
    assert "3 runs" in text
    page.select_option("#filter-status", "failed")
    page.click("text=Filter")
    page.wait_for_url("**status=failed**")
    assert "No runs match these filters" in page.inner_text("main")
    page.goto(served.url + "?pipeline=scored&per_page=2")
    assert "page 1 of 2" in page.inner_text("main")
    page.click("a[rel=next]")
    assert "page 2 of 2" in page.inner_text("main")
    assert page.locator("#runs tbody tr").count() == 1


def test_run_page_graph_has_one_node_per_step(page: Page, served: Served, tmp_path: Path) -> None:
    shots = _shots(tmp_path)
    page.goto(f"{served.url}runs/{served.runs[0]}")
    assert _graph_node_count(page) == len(STEPS)
    assert page.get_attribute("#graph", "data-layout") == "dagre"
    # load -> score -> report (data), report -> notify (after=)
    assert page.get_attribute("#graph", "data-edges") == "3"
    ids = page.evaluate("window.zbGraph.nodes().map(n => n.id())")
    assert sorted(ids) == sorted(STEPS)
    assert page.locator("#steps tbody tr").count() == len(STEPS)
    page.screenshot(path=str(shots / "dashboard-run.png"), full_page=True)
    page.locator("#graph").screenshot(path=str(shots / "dashboard-graph.png"))
    # The cached re-run shows its cache hits in the graph and the table.
    page.goto(f"{served.url}runs/{served.runs[2]}")
    _graph_node_count(page)
    cached = page.evaluate("window.zbGraph.nodes('.cached').length")
    assert cached == len(STEPS)
    assert page.locator("#steps td:text-is('hit')").count() == len(STEPS)
    page.click("#steps a:text-is('score')")
    reused = page.inner_text("#artifacts .reused")
    assert f"reused from score of run {served.runs[0]}" in reused
    assert (shots / "dashboard-graph.png").read_bytes()[:4] == b"\x89PNG"


def test_clicking_a_step_in_the_graph_shows_its_artifacts_and_lineage(
    page: Page, served: Served
) -> None:
    page.goto(f"{served.url}runs/{served.runs[0]}")
    _graph_node_count(page)
    x, y = page.evaluate(
        """() => {
            const p = window.zbGraph.getElementById('score').renderedPosition();
            const box = document.getElementById('graph').getBoundingClientRect();
            return [box.left + p.x, box.top + p.y];
        }"""
    )
    page.mouse.click(x, y)
    page.wait_for_url("**/steps/score")
    main_text = page.inner_text("main")
    assert "Step score" in main_text
    assert "mean" in main_text  # its metrics
    artifacts = page.inner_text("#artifacts")
    assert "summary" in artifacts and "builtins.json" in artifacts
    assert "data" in page.inner_text("#inputs")  # the input it read from load
    page.click("#artifacts a.mono")
    page.wait_for_url("**/artifacts/**")
    assert "score" in page.inner_text("#lineage")
    assert "report" in page.inner_text("#consumers")  # the step that read it
    assert '"n": 3' in page.inner_text("#value")


def test_report_visualization_opens_sandboxed(page: Page, served: Served, tmp_path: Path) -> None:
    page.goto(f"{served.url}runs/{served.runs[0]}/steps/report")
    link = page.locator("#artifacts a.vis", has_text="page.html")
    href = link.get_attribute("href")
    assert href and href.endswith("/visualizations/page.html")
    response = page.goto(served.url.rstrip("/") + href)
    assert response is not None and response.status == 200
    assert "sandbox" in response.headers["content-security-policy"]
    assert page.inner_text("#headline") == "Score report: 3 rows"
    # On the artifact page the report is shown in a sandboxed frame.
    page.go_back()
    page.click("#artifacts a.mono")
    frame = page.frame_locator(".visualization iframe")
    assert frame.locator("#headline").inner_text() == "Score report: 3 rows"
    page.screenshot(path=str(_shots(tmp_path) / "dashboard-artifact.png"), full_page=True)


def test_hostile_parameter_is_shown_as_text_never_run(page: Page, served: Served) -> None:
    page.goto(f"{served.url}runs/{served.runs[1]}")
    _graph_node_count(page)
    assert HOSTILE in page.inner_text("main")
    page.goto(f"{served.url}runs/{served.runs[1]}/steps/score")
    assert HOSTILE in page.inner_text("main")
    assert page.evaluate("window.__xss") is None


def test_compare_page_from_selected_runs(page: Page, served: Served, tmp_path: Path) -> None:
    shots = _shots(tmp_path)
    first, second, _ = served.runs
    page.goto(served.url)
    page.check(f"input[value='{first}']")
    page.check(f"input[value='{second}']")
    page.click("#compare-button")
    page.wait_for_url("**/compare?**")
    assert page.title().startswith("Compare 2 runs")
    rows = page.locator("#compare-parameters tr.differs").all_inner_texts()
    assert any(r.startswith("rows") for r in rows)
    page.wait_for_selector("#charts[data-charts]")
    assert page.get_attribute("#charts", "data-charts") == "2"  # score.mean, score.rows
    assert page.locator("#charts canvas").count() == 2
    page.screenshot(path=str(shots / "dashboard-compare.png"), full_page=True)
    assert page.evaluate("window.__xss") is None


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_unknown_run_and_bad_queries_answer_with_a_message(served: Served) -> None:
    prefix = served.runs[0][:-2]
    status, body = _get(f"{served.url}runs/{prefix}xx")
    assert status == 404
    assert "did you mean" in body.lower() and served.runs[0] in body
    assert "mode=ro" not in body  # the store as the user configured it
    status, body = _get(f"{served.url}?status=bogus")
    assert status == 400 and "choose one of running" in body
    status, body = _get(f"{served.url}static/..%2F..%2Fcli%2Fmain.py")
    assert status == 404
    status, body = _get(f"{served.url}compare?run={served.runs[0]}")
    assert status == 400 and "at least two runs" in body


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob("metadata.db*"))
        if not p.name.endswith("-shm")  # readers' shared lock table, not data
    }


def test_dashboard_writes_nothing(served: Served) -> None:
    before = _digest(served.home)
    for path in ("", f"runs/{served.runs[0]}", f"runs/{served.runs[0]}/steps/score"):
        assert _get(served.url + path)[0] == 200
    assert _digest(served.home) == before


def test_ctrl_c_stops_cleanly_and_port_in_use_is_a_message(served: Served) -> None:
    port = int(served.url.rsplit(":", 1)[1].strip("/"))
    code = subprocess.run(
        [sys.executable, "-m", "zenml_bridge", "dashboard", "--port", str(port)],
        env=served.env,
        cwd=served.home,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert code.returncode == 2
    assert f"Port {port} on 127.0.0.1 is already in use" in code.stderr
    assert "Traceback" not in code.stderr
    process, _ = _start(served.env, served.home)
    assert _stop(process) == 0
    assert process.stdout is not None and "Dashboard stopped." in process.stdout.read()


def test_missing_store_is_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZENML_BRIDGE_METADATA_URL", f"sqlite:///{tmp_path / 'none.db'}")
        mp.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
        mp.chdir(tmp_path)
        assert main(["dashboard", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "There is no metadata store at" in err and "zenml-bridge run SRC" in err
    assert not (tmp_path / "none.db").exists()


def test_postgresql_store(page: Page, postgres_url: str, tmp_path: Path) -> None:
    """The same pages on PostgreSQL; the dashboard's session refuses writes."""
    env = _env(tmp_path, postgres_url)
    run_id = _run(env, tmp_path, "rows=4")
    from zenml_bridge.dashboard.data import open_store

    store = open_store(postgres_url)
    import sqlalchemy as sa

    try:
        with (
            pytest.raises(sa.exc.DBAPIError, match="read-only transaction"),
            store.engine.begin() as conn,
        ):
            conn.execute(sa.text("CREATE TABLE zb_dashboard_probe (x int)"))
    finally:
        store.engine.dispose()
    process, url = _start(env, tmp_path)
    try:
        page.goto(url)
        assert run_id in page.inner_text("#runs")
        page.click(f"text={run_id}")
        assert _graph_node_count(page) == len(STEPS)
        page.click("#steps a:text-is('score')")
        assert "summary" in page.inner_text("#artifacts")
    finally:
        code = _stop(process)
    assert code == 0


def test_mariadb_store_pages_and_read_only_session(mariadb_url: str, tmp_path: Path) -> None:
    """MariaDB through the app itself (no browser): pages render, the session refuses writes."""
    import sqlalchemy as sa

    from zenml_bridge.dashboard.data import open_store
    from zenml_bridge.dashboard.server import Dashboard

    run_id = _run(_env(tmp_path, mariadb_url), tmp_path, "rows=2")
    store = open_store(mariadb_url)
    try:
        with (
            pytest.raises(sa.exc.DBAPIError, match="READ ONLY"),
            store.engine.begin() as conn,
        ):
            conn.execute(sa.text("CREATE TEMPORARY TABLE zb_probe (x int)"))
            conn.execute(sa.text("INSERT INTO zb_runs (run_id) VALUES ('x')"))
        app = Dashboard(store)
        listing = app.handle("/")
        assert listing.status == 200 and run_id.encode() in listing.body
        step = app.handle(f"/runs/{run_id}/steps/score")
        assert step.status == 200 and b"summary" in step.body
    finally:
        store.engine.dispose()


def test_empty_postgresql_store_is_a_message_not_a_migration(postgres_url: str) -> None:
    import sqlalchemy as sa

    from zenml_bridge.dashboard.data import open_store
    from zenml_bridge.errors import BridgeError

    with pytest.raises(BridgeError, match="has no zenml-bridge tables yet or an older schema"):
        open_store(postgres_url)
    from zenml_bridge.stores.connect import parse_url

    engine = sa.create_engine(parse_url(postgres_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
            ).scalar()
    finally:
        engine.dispose()
    assert tables == 0


def test_without_jinja2_the_message_names_the_extra(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "jinja2", None)  # as if not installed
        mp.setenv("ZENML_BRIDGE_METADATA_URL", served.env["ZENML_BRIDGE_METADATA_URL"])
        assert main(["dashboard", "--port", "0"]) == 2
    assert "pip install 'zenml-bridge[dashboard]'" in capsys.readouterr().err


def test_visualizations_of_an_artifact_without_table_rows_come_from_its_folder(
    served: Served,
) -> None:
    """Artifacts made before the visualizations table (schema 5) still show their reports."""
    import sqlite3

    status, body = _get(f"{served.url}runs/{served.runs[1]}/steps/report")
    artifact_id = re.search(r'href="/artifacts/(\w+)/visualizations/page\.html"', body)
    assert status == 200 and artifact_id, body
    with sqlite3.connect(served.home / "metadata.db") as conn:  # the test writes, not the app
        deleted = conn.execute(
            "DELETE FROM zb_visualizations WHERE artifact_id = ?", (artifact_id.group(1),)
        ).rowcount
    assert deleted == 1
    status, body = _get(f"{served.url}artifacts/{artifact_id.group(1)}/visualizations/page.html")
    assert status == 200 and "Score report: 5 rows" in body


def test_a_stopped_run_shows_its_reason_and_step_states(page: Page, tmp_path: Path) -> None:
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'metadata.db'}")
    run_id = _run(env, tmp_path, "rows=5", pipeline="gated", ends="stopped")
    process, url = _start(env, tmp_path)
    try:
        page.goto(url + "?status=stopped")
        assert run_id in page.inner_text("#runs")
        page.click(f"text={run_id}")
        assert _graph_node_count(page) == 4
        assert "5 rows > 4" in page.inner_text("dl.summary")  # the run's reason
        rows = {r.split("\t")[0]: r for r in page.locator("#steps tbody tr").all_inner_texts()}
        assert "stopped" in rows["gate"]
        assert "completed" not in rows["report"]  # never ran after the gate
        label = page.evaluate("window.zbGraph.getElementById('gate').data('label')")
        assert "stopped" in label
    finally:
        code = _stop(process)
    assert code == 0
