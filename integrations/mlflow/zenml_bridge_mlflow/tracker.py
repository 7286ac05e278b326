"""MLflow experiment tracker: one MLflow run per pipeline run, one nested run per step.

Layout in MLflow (experiment = pipeline name):

- a parent run per pipeline run, tagged ``zenml_bridge.run_id``, with the pipeline parameters,
  IR sha, git sha, and a copy of every step's metrics (``<step>.<key>``) and output artifact
  URIs (tag ``zenml_bridge.output.<step>.<output>``), so runs compare side by side in one table;
- a child run per step (``mlflow.parentRunId``) with the step's parameters, metrics, output
  URIs and content hashes. Steps own their keys: two steps may both log ``accuracy`` or take a
  parameter ``C`` (MLflow params are immutable per run), ``mlflow.autolog`` and logged models
  land in the step that produced them, and a step process on Airflow/Kubeflow writes only into
  its own run.

On Airflow and Kubeflow each step is its own process, so :meth:`on_run_start` finds or creates
the parent by our run id. Two processes can race; each creates, reads back the parents with
our run id and keeps the first by (start time, run id), deleting its own if it lost. Later
step processes of distributed backends also merge any duplicate that slipped through (children
re-pointed, metric copies redone), so every run converges on one parent.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any, TypeVar

from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime.tracking import ExperimentTracker, RunInfo, StepInfo

from zenml_bridge_mlflow.context import ActiveStepRun, fluent_uris
from zenml_bridge_mlflow.settings import MLflowSettings, MLflowStepSettings

T = TypeVar("T")

TAG_RUN_ID = "zenml_bridge.run_id"
TAG_KIND = "zenml_bridge.kind"
TAG_STEP = "zenml_bridge.step"
TAG_OUTPUT = "zenml_bridge.output."
TAG_SHA = "zenml_bridge.output_sha256."

MAX_PARAM = 6000  # MLflow's limits on a param and a tag value
MAX_TAG = 8000
_KEY_OK = re.compile(r"[^A-Za-z0-9_\-. /]")


class MLflowExperimentTracker(ExperimentTracker):
    """Tracks every pipeline run in MLflow (flavor ``mlflow``).

    Example:
        >>> tracker = MLflowExperimentTracker(tracking_uri="sqlite:////tmp/mlflow.db")
        >>> tracker.settings.tracking_uri
        'sqlite:////tmp/mlflow.db'
    """

    flavor = "mlflow"

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.settings = MLflowSettings.from_config(config)
        self._lock = threading.RLock()
        self._client: Any = None
        self._experiments: dict[str, str] = {}
        self._parents: dict[str, str] = {}
        self._children: dict[tuple[str, str], str] = {}
        self._metrics: dict[tuple[str, str], list[tuple[str, float, int]]] = {}
        self._tags: dict[tuple[str, str], dict[str, str]] = {}
        self._fluent: dict[tuple[str, str], ExitStack] = {}
        #: (our run id, step name) -> run-level (metrics, tags) a step logged, sent at its end.
        self._run_values: dict[tuple[str, str], tuple[dict[str, float], dict[str, str]]] = {}
        #: (our run id, step name) -> the MLflow run of a step running now (see
        #: :meth:`active_step_run`).
        self._active: dict[tuple[str, str], ActiveStepRun] = {}
        #: Set when the backend stopped answering: later calls of the run fail at once with the
        #: first message instead of waiting for retries again (on_error: skip stays fast).
        self._down: str | None = None
        #: Copies for the parent (metrics, tags) kept until the run ends, for one-process runs.
        self._pending: dict[str, tuple[list[Any], dict[str, str]]] = {}

    # -- the ExperimentTracker interface ----------------------------------------------------

    def on_run_start(self, run: RunInfo) -> Mapping[str, str]:
        with self._lock:
            if run.run_id not in self._parents:
                self._down = None  # a new run tries the backend again
                self._guard("start the MLflow run", run, lambda: self._start(run))
            return self._links(run)

    def on_step_start(self, run: RunInfo, step: StepInfo) -> None:
        key = (run.run_id, step.name)
        child = self._guard("start the step's MLflow run", run, lambda: self._new_child(run, step))
        with self._lock:
            self._children[key] = child
            self._active[key] = ActiveStepRun(
                tracking_uri=self.settings.tracking_uri,
                registry_uri=self.settings.registry_uri,
                experiment_id=self._experiments[run.pipeline],
                run_id=child,
                parent_run_id=self._parents[run.run_id],
            )
        options = MLflowStepSettings.parse(
            step.settings.get(MLflowStepSettings.key), step=step.name
        )
        autolog = options.autolog_options(self.settings.autolog)
        if autolog is not None:
            self._guard("turn on mlflow.autolog", run, lambda: self._start_autolog(key, autolog))

    def log_metrics(self, run: RunInfo, step: StepInfo, metrics: Mapping[str, float]) -> None:
        # Buffered and written with the step's end: one request instead of one per call.
        with self._lock:
            buffer = self._metrics.setdefault((run.run_id, step.name), [])
            seen: dict[str, int] = {}
            for key, _, index in buffer:
                seen[key] = max(seen.get(key, -1), index)
            for key, value in metrics.items():
                name = _key(key)
                buffer.append((name, _number(step.name, key, value), seen.get(name, -1) + 1))
                seen[name] = seen.get(name, -1) + 1

    def log_metadata(self, run: RunInfo, step: StepInfo, metadata: Mapping[str, Any]) -> None:
        with self._lock:
            tags = self._tags.setdefault((run.run_id, step.name), {})
            for key, value in metadata.items():
                tags[f"zenml_bridge.metadata.{_key(key)}"] = _text(value, MAX_TAG)

    def log_run_values(
        self,
        run: RunInfo,
        step: StepInfo,
        metrics: Mapping[str, float],
        metadata: Mapping[str, Any],
    ) -> None:
        """Run-level values go onto the parent run: metrics under their own key, metadata as
        ``zenml_bridge.run_metadata.<key>`` tags (sent with the step's end)."""
        with self._lock:
            self._run_values.setdefault((run.run_id, step.name), ({}, {}))
            pending_metrics, pending_tags = self._run_values[(run.run_id, step.name)]
            for name, value in metrics.items():
                pending_metrics[_key(name)] = _number(step.name, name, value)
            for name, value in metadata.items():
                pending_tags[f"zenml_bridge.run_metadata.{_key(name)}"] = _text(value, MAX_TAG)

    def on_step_end(self, run: RunInfo, step: StepInfo, status: str) -> None:
        key = (run.run_id, step.name)
        with self._lock:
            fluent = self._fluent.pop(key, None)
            child = self._children.pop(key, None)
            metrics = self._metrics.pop(key, [])
            tags = self._tags.pop(key, {})
            run_metrics, run_tags = self._run_values.pop(key, ({}, {}))
            self._active.pop(key, None)
        if fluent is not None:  # end the fluent run and autolog before the status is set
            self._guard("turn off mlflow.autolog", run, fluent.close)

        def finish() -> None:
            nonlocal child
            self._ensure_parent(run)
            if run.backend != "local":
                self._merge_duplicates(run)
            if child is None:  # a cache hit (no on_step_start) or a start that was skipped
                child = self._new_child(run, step, cached=status == "cached")
            self._finish_child(run, step, child, status, metrics, tags)
            if run_metrics or run_tags:
                self._to_parent(run, _metric_list(run_metrics), run_tags)

        self._guard(f"record step '{step.name}'", run, finish)

    def on_run_end(self, run: RunInfo, status: str) -> None:
        with self._lock:
            if run.run_id not in self._parents:
                return  # the start failed or was skipped: there is no MLflow run to finish

        def finish() -> None:
            if run.backend != "local":
                self._merge_duplicates(run)
            parent = self._parents[run.run_id]
            with self._lock:
                metrics, tags = self._pending.pop(run.run_id, ([], {}))
            self._log_batch(parent, metrics, {**tags, "zenml_bridge.status": status})
            self.client.set_terminated(parent, "FINISHED" if status == "completed" else "FAILED")

        try:
            self._guard("finish the MLflow run", run, finish)
        finally:
            with self._lock:
                self._parents.pop(run.run_id, None)
                self._pending.pop(run.run_id, None)

    def active_step_run(self, run_id: str, step: str) -> ActiveStepRun | None:
        """The MLflow run of step ``step`` of our run ``run_id`` while it runs, else None."""
        with self._lock:
            return self._active.get((run_id, step))

    # -- MLflow plumbing ----------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The :class:`mlflow.MlflowClient` of the configured tracking URI."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        # Our run record already links the MLflow run; MLflow's "View run at" lines are noise.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        if self.settings.is_http:
            # MLflow retries a dead server for minutes by default; a pipeline should hear fast.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(self.settings.retries))
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(self.settings.timeout_s))
            self._check_server()
        from mlflow import MlflowClient

        if self.settings.uri_source == "default":
            _use_wal(self.settings.tracking_uri)
        return MlflowClient(
            tracking_uri=self.settings.tracking_uri, registry_uri=self.settings.registry_uri
        )

    def _check_server(self) -> None:
        # One quick request without retries, so an outage is reported in well under a second.
        import requests

        url = self.settings.tracking_uri.rstrip("/") + "/health"
        try:
            response = requests.get(url, timeout=min(self.settings.timeout_s, 5) or 5)
        except requests.RequestException as exc:
            raise _Unreachable(_short_reason(exc)) from None
        if response.status_code >= 500:
            raise _Unreachable(f"/health answered HTTP {response.status_code}")

    def _experiment_id(self, name: str) -> str:
        if name in self._experiments:
            return self._experiments[name]
        from mlflow.exceptions import MlflowException

        experiment_name = self.settings.experiment_name or name
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(
                    experiment_name,
                    artifact_location=self.settings.artifact_location,
                    tags={"zenml_bridge.pipeline": name},
                )
            except MlflowException as exc:  # another process created it first
                experiment = self.client.get_experiment_by_name(experiment_name)
                if experiment is None:
                    raise exc from None
                experiment_id = experiment.experiment_id
        elif experiment.lifecycle_stage == "deleted":
            raise BridgeError(
                f"MLflow experiment '{experiment_name}' (id {experiment.experiment_id}) at "
                f"{self.settings.display_uri} is deleted, so runs of pipeline '{name}' cannot be "
                f"logged there. Restore it (mlflow experiments restore --experiment-id "
                f"{experiment.experiment_id}) or set experiment_tracker.experiment_name."
            )
        else:
            experiment_id = experiment.experiment_id
        self._experiments[name] = str(experiment_id)
        return str(experiment_id)

    def _start(self, run: RunInfo) -> None:
        if self.settings.is_http and self._client is not None:
            self._check_server()  # the server may have gone since the last run: say so at once
        self._resolve_parent(run)

    def _resolve_parent(self, run: RunInfo) -> None:
        linked = run.links.get("mlflow.run_id")
        if linked and run.links.get("mlflow.experiment_id"):
            existing = self._get_run(linked)
            if (
                existing is not None
                and existing.info.lifecycle_stage == "active"
                and existing.data.tags.get(TAG_RUN_ID) == run.run_id
            ):
                self._experiments.setdefault(run.pipeline, existing.info.experiment_id)
                self._parents[run.run_id] = linked
                return
        experiment_id = self._experiment_id(run.pipeline)
        found = self._search_parents(experiment_id, run.run_id)
        if found:
            self._parents[run.run_id] = found[0].info.run_id
            return
        from mlflow.entities import Param

        created = self.client.create_run(
            experiment_id, run_name=run.run_id, tags=self._parent_tags(run)
        ).info.run_id
        params = [Param(_key(k), _text(v, MAX_PARAM)) for k, v in sorted(run.parameters.items())]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per request
            self.client.log_batch(created, params=params[i : i + 100])
        found = self._search_parents(experiment_id, run.run_id)
        winner = found[0].info.run_id if found else created
        if winner != created:  # another step process of this run created one first
            self.client.delete_run(created)
        self._parents[run.run_id] = winner

    def _ensure_parent(self, run: RunInfo) -> None:
        with self._lock:
            if run.run_id not in self._parents:
                self._resolve_parent(run)

    def _search_parents(self, experiment_id: str, run_id: str) -> list[Any]:
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG_RUN_ID}` = {_quote(run_id)} "
            f"and tags.`{TAG_KIND}` = 'pipeline'",
            max_results=100,
        )
        return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))

    def _get_run(self, mlflow_run_id: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(mlflow_run_id)
        except MlflowException:
            return None

    def _parent_tags(self, run: RunInfo) -> dict[str, str]:
        tags = {
            TAG_RUN_ID: run.run_id,
            TAG_KIND: "pipeline",
            "zenml_bridge.pipeline": run.pipeline,
            "zenml_bridge.ir_sha256": run.ir_sha256,
            "zenml_bridge.backend": run.backend,
            "mlflow.source.name": f"zenml-bridge:{run.pipeline}",
            "mlflow.source.type": "JOB",
        }
        if run.git_sha:
            tags["zenml_bridge.git_sha"] = run.git_sha
            tags["mlflow.source.git.commit"] = run.git_sha
        if run.git_dirty is not None:
            tags["zenml_bridge.git_dirty"] = str(bool(run.git_dirty)).lower()
        return tags

    def _new_child(self, run: RunInfo, step: StepInfo, *, cached: bool = False) -> str:
        self._ensure_parent(run)
        from mlflow.entities import Param

        tags = {
            "mlflow.parentRunId": self._parents[run.run_id],
            TAG_RUN_ID: run.run_id,
            TAG_KIND: "step",
            TAG_STEP: step.name,
            "zenml_bridge.pipeline": run.pipeline,
            "zenml_bridge.ir_sha256": run.ir_sha256,
            "zenml_bridge.cached": str(cached or step.cached).lower(),
        }
        if run.git_sha:
            tags["mlflow.source.git.commit"] = run.git_sha
        child: str = self.client.create_run(
            self._experiments[run.pipeline], run_name=step.name, tags=tags
        ).info.run_id
        params = [Param(_key(k), _text(v, MAX_PARAM)) for k, v in sorted(step.parameters.items())]
        for i in range(0, len(params), 100):
            self.client.log_batch(child, params=params[i : i + 100])
        return child

    def _finish_child(
        self,
        run: RunInfo,
        step: StepInfo,
        child: str,
        status: str,
        metrics: list[tuple[str, float, int]],
        tags: dict[str, str],
    ) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        # The parent may have changed since the start if a duplicate was merged away.
        tags = {
            **tags,
            "zenml_bridge.status": status,
            "mlflow.parentRunId": self._parents[run.run_id],
        }
        if step.duration_s is not None:
            tags["zenml_bridge.duration_s"] = f"{step.duration_s:.6f}"
        for output, (uri, sha) in sorted(step.outputs.items()):
            tags[TAG_OUTPUT + output] = _text(uri, MAX_TAG)
            tags[TAG_SHA + output] = sha
        child_metrics = [Metric(k, v, now, i) for k, v, i in metrics]
        self._log_batch(child, child_metrics, tags)
        end = "FINISHED" if status in ("completed", "cached") else "FAILED"
        self.client.set_terminated(child, end)
        # The copy on the parent: one row per pipeline run in the experiment's table.
        parent_tags = {
            f"{TAG_OUTPUT}{step.name}.{output}": _text(uri, MAX_TAG)
            for output, (uri, _) in step.outputs.items()
        }
        parent_metrics = [Metric(_key(f"{step.name}.{k}"), v, now, i) for k, v, i in metrics]
        self._to_parent(run, parent_metrics, parent_tags, child=child)

    def _to_parent(
        self,
        run: RunInfo,
        parent_metrics: list[Any],
        parent_tags: dict[str, str],
        child: str | None = None,
    ) -> None:
        """Send copies to the parent run: with the run's end (local), else now."""
        if not (parent_tags or parent_metrics):
            return
        if run.backend == "local":
            # One process runs every step: send the copies once, with the run's end.
            with self._lock:
                pending = self._pending.setdefault(run.run_id, ([], {}))
                pending[0].extend(parent_metrics)
                pending[1].update(parent_tags)
            return
        try:
            self._log_batch(self._parents[run.run_id], parent_metrics, parent_tags)
        except Exception:
            # Another step process merged our parent away just now: follow it and retry once.
            self._merge_duplicates(run)
            if child is not None:
                self.client.set_tag(child, "mlflow.parentRunId", self._parents[run.run_id])
            self._log_batch(self._parents[run.run_id], parent_metrics, parent_tags)

    def _log_batch(self, run_id: str, metrics: list[Any], tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        tag_list = [RunTag(k, v) for k, v in sorted(tags.items())]
        while metrics or tag_list:
            self.client.log_batch(run_id, metrics=metrics[:1000], tags=tag_list[:100])
            metrics, tag_list = metrics[1000:], tag_list[100:]

    def _merge_duplicates(self, run: RunInfo) -> None:
        """Keep one parent per run id when step processes raced past each other."""
        experiment_id = self._experiments[run.pipeline]
        parents = self._search_parents(experiment_id, run.run_id)
        if len(parents) <= 1:
            if parents:
                self._parents[run.run_id] = parents[0].info.run_id
            return
        keep = parents[0].info.run_id
        for duplicate in parents[1:]:
            dup_id = duplicate.info.run_id
            children = self.client.search_runs(
                [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = {_quote(dup_id)}"
            )
            for child in children:
                self.client.set_tag(child.info.run_id, "mlflow.parentRunId", keep)
                self._copy_to_parent(keep, child)
            self.client.delete_run(dup_id)
        self._parents[run.run_id] = keep

    def _copy_to_parent(self, parent: str, child: Any) -> None:
        from mlflow.entities import Metric

        step = child.data.tags.get(TAG_STEP, child.info.run_name)
        now = int(time.time() * 1000)
        metrics = [Metric(_key(f"{step}.{k}"), v, now, 0) for k, v in child.data.metrics.items()]
        tags = {
            f"{TAG_OUTPUT}{step}.{k[len(TAG_OUTPUT) :]}": v
            for k, v in child.data.tags.items()
            if k.startswith(TAG_OUTPUT)
        }
        if metrics or tags:
            self._log_batch(parent, metrics, tags)

    def _links(self, run: RunInfo) -> dict[str, str]:
        parent = self._parents[run.run_id]
        experiment_id = self._experiments[run.pipeline]
        links = {
            "mlflow.run_id": parent,
            "mlflow.experiment_id": experiment_id,
            "mlflow.tracking_uri": self.settings.display_uri,
        }
        if self.settings.is_http:
            base = self.settings.display_uri.rstrip("/")
            links["mlflow.run_url"] = f"{base}/#/experiments/{experiment_id}/runs/{parent}"
        return links

    def _start_autolog(self, key: tuple[str, str], options: Mapping[str, Any]) -> None:
        import mlflow

        stack = ExitStack()
        try:
            stack.enter_context(fluent_uris(self.settings.tracking_uri, self.settings.registry_uri))
            stack.enter_context(mlflow.start_run(run_id=self._children[key]))
            mlflow.autolog(**{"silent": True, **options})
            stack.callback(mlflow.autolog, disable=True, silent=True)
        except BaseException:
            stack.close()
            raise
        with self._lock:
            self._fluent[key] = stack

    def _guard(self, what: str, run: RunInfo, call: Callable[[], T]) -> T:
        """Run an MLflow call; turn any failure into one BridgeError that says what to do."""
        if self._down is not None:
            raise BridgeError(self._down)
        try:
            return call()
        except BridgeError:
            raise
        except Exception as exc:
            reason = exc.reason if isinstance(exc, _Unreachable) else _short_reason(exc)
            message = self._failure_message(what, run, reason)
            if isinstance(exc, _Unreachable) or reason in _UNREACHABLE:
                self._down = message
            raise BridgeError(message) from exc

    def _failure_message(self, what: str, run: RunInfo, reason: str) -> str:
        source = {
            "config": "experiment_tracker.tracking_uri in the stack config",
            "MLFLOW_TRACKING_URI": "the MLFLOW_TRACKING_URI environment variable",
        }.get(self.settings.uri_source, "the default sqlite:/// database in .zenml_bridge/")
        hint = (
            "Check that the MLflow server is running (for example `mlflow server --host "
            "127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db`)"
            if self.settings.is_http
            else "Check that the database file is writable"
        )
        return (
            f"MLflow tracking failed: could not {what} of pipeline '{run.pipeline}' run "
            f"{run.run_id} at {self.settings.display_uri} (from {source}): {reason}. "
            f"{hint}, or set experiment_tracker.on_error: skip to run without tracking."
        )


def _use_wal(uri: str) -> None:
    """Write-ahead log for our own sqlite database: about half the time per write, and step
    processes on one machine stop blocking each other's reads (the setting stays in the file)."""
    import sqlite3

    path = uri[len("sqlite:///") :]
    connection = sqlite3.connect(path, timeout=30)
    try:
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


class _Unreachable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _metric_list(metrics: Mapping[str, float]) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(name, value, now, 0) for name, value in sorted(metrics.items())]


def _key(key: Any) -> str:
    # MLflow keys allow letters, digits, _ - . space and /; anything else becomes _.
    return _KEY_OK.sub("_", str(key))[:250] or "_"


def _text(value: Any, limit: int) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(step: str, key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BridgeError(
            f"Step '{step}' logged the metric {key!r} = {value!r}, which is not a number. "
            "Log numbers with log_metric() and anything else with log_metadata()."
        ) from None
    return number if not math.isinf(number) else math.copysign(1.7976931348623157e308, number)


def _quote(value: str) -> str:
    if "'" in value:
        raise BridgeError(f"Run id {value!r} contains a quote, which MLflow filters cannot hold.")
    return f"'{value}'"


_REFUSED = "connection refused (is the server running?)"
_TIMEOUT = "the request timed out"
_NO_ANSWER = "the server did not answer"
_UNREACHABLE = (_REFUSED, _TIMEOUT, _NO_ANSWER)


def _short_reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "connection refused" in lowered or "failed to establish a new connection" in lowered:
        return _REFUSED
    if "timed out" in lowered or "timeout" in lowered:
        return _TIMEOUT
    if "max retries exceeded" in lowered or "connection aborted" in lowered:
        return _NO_ANSWER
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first if len(first) <= 300 else first[:297] + "..."
