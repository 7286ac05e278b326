"""A real Airflow deployment for the tests: scheduler, dag-processor, api-server (3.x), workers.

Started the way a platform team runs Airflow: each component through the environment's
``bin/airflow`` with a PATH that does NOT contain that environment (systemd units and many images
do not activate it), PostgreSQL as Airflow's database (a fresh database per test session,
dropped after), LocalExecutor or CeleryExecutor with Redis as the broker and two
``airflow celery worker`` processes. Every process runs in its own process group, binds
127.0.0.1 only, logs into a file that is kept and printed (its tail) when a test fails, and is
stopped in ``finally`` with its whole group.

Runs are triggered through the REST API (``POST /api/v2/dags/{id}/dagRuns`` with conf, a JWT
from ``POST /auth/token`` of the SimpleAuthManager with a configured user) and waited on by
polling the API.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DB = 13  # a Redis database of its own, flushed before and after
#: A PATH without the Airflow environment: tasks must not depend on an activated venv.
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"
USER, ROLE = "zb", "admin"
FINISHED = ("success", "failed")
#: Airflow 3 knows core executors by name; provider executors by their import path.
EXECUTORS = {
    "LocalExecutor": "LocalExecutor",
    "CeleryExecutor": "airflow.providers.celery.executors.celery_executor.CeleryExecutor",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin_connection() -> Any:
    import psycopg

    return psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database for Airflow; its SQLAlchemy URL. Dropped afterwards."""
    name = f"zb_airflow_{uuid.uuid4().hex[:10]}"
    with _admin_connection() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with _admin_connection() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _flush_redis() -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()


class Deployment:
    """One Airflow deployment in ``root``; use :func:`deployment` to start and stop it."""

    def __init__(
        self, root: Path, airflow_bin: Path, db_url: str, executor: str, env: dict[str, str]
    ) -> None:
        self.root = root
        self.airflow_bin = airflow_bin
        self.executor = executor
        self.dags = root / "dags"
        self.home = root / "airflow-home"
        self.logs = root / "process-logs"
        for folder in (self.dags, self.home, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._token: str | None = None
        self.password = secrets.token_hex(8)
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({USER: self.password}), encoding="utf-8")
        # Only what a unit file would set: no venv on PATH, no inherited AIRFLOW_* or ZENML_*.
        keep = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER")
        self.env = {k: os.environ[k] for k in keep if k in os.environ}
        self.env.update(
            PATH=BARE_PATH,
            PYTHONWARNINGS="ignore",
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR=EXECUTORS[executor],
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base}/execution/",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:{ROLE}",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db_url,
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API__BASE_URL=self.base,
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(16),
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="3",
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="5",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC="2",
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
            AIRFLOW__CELERY__RESULT_BACKEND="db+" + db_url.replace("+psycopg2", ""),
            AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
            AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER="1",
        )
        self.env.update(env)

    # -- processes ---------------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``bin/airflow ARGS`` to completion (own process group, killed on timeout)."""
        with subprocess.Popen(
            [str(self.airflow_bin), *args],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        ) as proc:
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
            return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")

    def start(self, name: str, *args: str, **env: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - owned by the process
        self.processes[name] = subprocess.Popen(
            [str(self.airflow_bin), *args],
            env={**self.env, **env},
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL what is left after a grace period."""
        for proc in self.processes.values():
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.processes.values():
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers of the group, also children
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def leftovers(self) -> list[int]:
        """Process groups of this deployment that still have a process (none after stop)."""
        alive = []
        for proc in self.processes.values():
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass
            alive.append(proc.pid)
        return alive

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"Airflow processes exited: {dead}\n{self.log_tails()}")

    def log_tails(self, chars: int = 3000) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(encoding="utf-8", errors="replace")
            parts.append(f"----- {path.name} (last {chars} chars) -----\n{text[-chars:]}")
        return "\n".join(parts)

    # -- REST API ----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise ApiError(exc.code, f"{method} {path}: {exc.code} {detail}") from None
        return json.loads(text) if text else None

    def token(self) -> str:
        if self._token is None:
            answer = self.request(
                "POST", "/auth/token", {"username": USER, "password": self.password}, auth=False
            )
            self._token = str(answer["access_token"])
        return self._token

    def wait_until_up(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                health = self.request("GET", "/api/v2/monitor/health", auth=False)
                if health["scheduler"]["status"] == "healthy":
                    return
            except (OSError, ApiError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Airflow did not come up\n{self.log_tails()}")
            time.sleep(1)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict[str, Any]:
        """The DAG once the dag-processor has parsed it (an import error fails at once)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            errors = self.request("GET", "/api/v2/importErrors")["import_errors"]
            if errors:
                raise AssertionError(f"import errors: {json.dumps(errors, indent=1)[:4000]}")
            try:
                return dict(self.request("GET", f"/api/v2/dags/{dag_id}"))
            except ApiError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise AssertionError(f"{exc}\n{self.log_tails()}") from None
            time.sleep(1)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        body = {"logical_date": None, "conf": conf or {}}
        run = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        return str(run["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            state = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in FINISHED:
                return str(state)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"run {run_id} still {state}: {self.task_states(dag_id, run_id)}\n"
                    + self.log_tails()
                )
            time.sleep(1)

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return {ti["task_id"]: ti for ti in self.request("GET", path)["task_instances"]}

    def task_states(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
        return {
            task: (ti["state"], ti["try_number"])
            for task, ti in self.task_instances(dag_id, run_id).items()
        }

    def wait_for_task(self, dag_id: str, run_id: str, task: str, state: str, timeout=120) -> None:
        deadline = time.monotonic() + timeout
        while self.task_states(dag_id, run_id).get(task, (None, 0))[0] != state:
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{task} never {state}: {self.task_states(dag_id, run_id)}\n{self.log_tails()}"
                )
            time.sleep(0.5)

    def clear(self, dag_id: str, run_id: str, tasks: list[str], downstream: bool = False) -> None:
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": tasks,
            "only_failed": False,
            "reset_dag_runs": True,
            "include_downstream": downstream,
        }
        self.request("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", body)

    def set_task_state(self, dag_id: str, run_id: str, task: str, state: str) -> None:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task}"
        self.request("PATCH", path, {"new_state": state})

    def task_log(self, dag_id: str, run_id: str, task: str, try_number: int) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task}/logs/{try_number}"
        answer = self.request("GET", path + "?full_content=true")
        content = answer.get("content", "")
        if isinstance(content, list):  # structured log lines: keep every field (error details)
            return "\n".join(
                json.dumps(item) if isinstance(item, dict) else str(item) for item in content
            )
        return str(content)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def deployment(
    root: Path, airflow_bin: Path, executor: str = "LocalExecutor", **env: str
) -> Iterator[Deployment]:
    """Airflow 3 with its own PostgreSQL database, started and always stopped again."""
    with fresh_database() as db_url:
        site = Deployment(root, airflow_bin, db_url, executor, env)
        if executor == "CeleryExecutor":
            _flush_redis()
        try:
            migrated = site.airflow("db", "migrate", timeout=600)
            assert migrated.returncode == 0, migrated.stdout[-4000:]
            site.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(site.port))
            site.start("scheduler", "scheduler")
            site.start("dag-processor", "dag-processor")
            if executor == "CeleryExecutor":
                for n in (1, 2):
                    site.start(
                        f"celery-worker-{n}",
                        "celery", "worker", "--celery-hostname", f"zb-worker-{n}@%h",
                        "--concurrency", "2", "--skip-serve-logs",
                    )  # fmt: skip
            site.wait_until_up()
            yield site
            site.stop()
            assert site.leftovers() == [], "Airflow processes left after stopping"
        finally:
            site.stop()
            if executor == "CeleryExecutor":
                _flush_redis()


@contextmanager
def airflow2_scheduler(root: Path, airflow_bin: Path, **env: str) -> Iterator[Deployment]:
    """Airflow 2.x: `airflow scheduler` (it parses the dags folder itself) with LocalExecutor on
    its own PostgreSQL database. Driven through the CLI (`dags trigger`, `dags list-runs`),
    which is what a cron job or a CI step on 2.x uses; its REST API (v1, basic auth through the
    webserver) would add a fourth process for no extra coverage of our side."""
    with fresh_database() as db_url:
        site = Deployment(root, airflow_bin, db_url, "LocalExecutor", env)
        try:
            migrated = site.airflow("db", "migrate", timeout=600)
            assert migrated.returncode == 0, migrated.stdout[-4000:]
            site.start("scheduler", "scheduler")
            yield site
            site.stop()
            assert site.leftovers() == [], "Airflow processes left after stopping"
        finally:
            site.stop()


def cli_json(site: Deployment, *args: str) -> Any:
    """The JSON that `airflow ARGS -o json` prints (log lines before it are skipped)."""
    result = site.airflow(*args, "-o", "json")
    assert result.returncode == 0, result.stdout[-4000:]
    for line in reversed(result.stdout.splitlines()):  # the JSON is one line, after any logs
        if line.startswith(("[", "{")):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise AssertionError(f"no JSON in the output of airflow {args}: {result.stdout[-3000:]}")


def wait_for_run_cli(site: Deployment, dag_id: str, run_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while True:
        site.check_alive()
        runs = {r["run_id"]: r["state"] for r in cli_json(site, "dags", "list-runs", "-d", dag_id)}
        if runs.get(run_id) in FINISHED:
            return str(runs[run_id])
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {runs.get(run_id)}\n{site.log_tails()}")
        time.sleep(2)
