"""The dashboard's web app: server-side rendered pages on the standard library's HTTP server.

Pages are Jinja2 templates with autoescaping (every text from the store is hostile until
escaped); data for scripts goes through Jinja2's ``tojson`` (HTML-safe JSON). The step graph is
drawn by Cytoscape.js with the dagre layout, metric charts by Chart.js, both vendored in
``static/vendor`` (no CDN). Visualizations are served with ``Content-Security-Policy: sandbox``
so a report's scripts run in an opaque origin, never as the dashboard.

Routes: ``/`` runs (``?pipeline=&status=&page=``), ``/runs/RUN``, ``/runs/RUN/steps/STEP``,
``/artifacts/ID``, ``/artifacts/ID/visualizations/NAME``, ``/compare?run=A&run=B``,
``/static/...``.
"""

from __future__ import annotations

import mimetypes
import posixpath
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from zenml_bridge.dashboard import data
from zenml_bridge.errors import BridgeError
from zenml_bridge.redact import redact_text

#: Pages: scripts only from this server, no plugins, no framing by other sites.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)
#: Visualizations (user HTML/SVG): scripts allowed, but in a sandbox with an opaque origin.
VISUALIZATION_CSP = "sandbox allow-scripts allow-popups; frame-ancestors 'self'"
_TEXT_TYPES = {"text/markdown", "application/json", "application/yaml"}


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class NotFound(BridgeError):
    """A page for something the store does not hold (404 with the message)."""


def _templates() -> Any:
    try:
        import jinja2
    except ImportError:
        raise BridgeError(
            "The dashboard needs Jinja2, which is not installed. Install the extra: "
            "pip install 'zenml-bridge[dashboard]'."
        ) from None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("zenml_bridge.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.filters["redact"] = lambda value: redact_text(str(value))
    env.filters["pretty"] = _pretty
    env.globals["duration"] = data.duration
    return env


def _when(timestamp: Any) -> str:
    if not isinstance(timestamp, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _pretty(value: Any) -> str:
    import json

    if isinstance(value, str):
        return redact_text(value)
    return redact_text(json.dumps(value, sort_keys=True, default=str))


class Dashboard:
    """The app: ``handle(path_and_query) -> Response``, reading ``store`` under one lock."""

    def __init__(self, store: Any, *, url: str | None = None, title: str = "zenml-bridge") -> None:
        self.store = store
        #: The URL the user configured (messages show it, not the read-only form).
        self.url = url or store.url
        self.title = title
        self.env = _templates()
        # One request reads the store at a time: the store's hot-path SQLite connection is
        # shared, and pages are small and fast.
        self._lock = threading.Lock()
        self._routes: list[tuple[tuple[str, ...], Callable[..., Response]]] = [
            ((), self.runs),
            (("runs", "*"), self.run),
            (("runs", "*", "steps", "*"), self.step),
            (("artifacts", "*"), self.artifact),
            (("artifacts", "*", "visualizations", "*"), self.visualization),
            (("compare",), self.compare),
        ]

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, target: str) -> Response:
        parts = urlsplit(target)
        segments = tuple(unquote(s) for s in parts.path.split("/") if s)
        query = {k: v for k, v in parse_qs(parts.query, keep_blank_values=False).items()}
        if segments[:1] == ("static",):
            return self.static(segments[1:])
        for pattern, handler in self._routes:
            if len(pattern) == len(segments) and all(
                p == "*" or p == s for p, s in zip(pattern, segments)
            ):
                args = [s for p, s in zip(pattern, segments) if p == "*"]
                try:
                    with self._lock:
                        return handler(*args, query=query)
                except NotFound as exc:
                    return self.error(HTTPStatus.NOT_FOUND, str(exc))
                except BridgeError as exc:
                    return self.error(HTTPStatus.BAD_REQUEST, str(exc))
        return self.error(HTTPStatus.NOT_FOUND, f"There is no page {parts.path!r} here.")

    def render(self, template: str, http_status: int = 200, **context: Any) -> Response:
        page = self.env.get_template(template).render(title=self.title, **context)
        return Response(http_status, page.encode("utf-8"))

    def error(self, status: int, message: str) -> Response:
        message = data.user_text(message, self.store.url, self.url)
        return self.render("error.html", status, status_code=int(status), message=message)

    # -- pages ----------------------------------------------------------------------------------

    def runs(self, *, query: Mapping[str, list[str]]) -> Response:
        pipeline = _one(query, "pipeline")
        status = _one(query, "status")
        if status and status not in data.RUN_STATES:
            raise BridgeError(
                f"Unknown run status {status!r}; choose one of {', '.join(data.RUN_STATES)}."
            )
        page = _int(query, "page", 1)
        per_page = _int(query, "per_page", data.PER_PAGE)
        result = data.runs_page(
            self.store, pipeline=pipeline, status=status, page=page, per_page=per_page
        )
        return self.render(
            "runs.html",
            result=result,
            pipelines=data.pipeline_names(self.store),
            states=data.RUN_STATES,
            pipeline=pipeline or "",
            status=status or "",
        )

    def _run(self, run_id: str) -> dict[str, Any]:
        run = self.store.get_run(run_id)
        if run is None:
            try:
                self.store.resolve_run(run_id)  # for its "did you mean" message
            except BridgeError as exc:
                raise NotFound(str(exc)) from None
            raise NotFound(f"There is no run {run_id!r}.")
        return dict(run)

    def run(self, run_id: str, *, query: Mapping[str, list[str]]) -> Response:
        run = self._run(run_id)
        records = self.store.step_runs(run_id)
        ir = data.ir_steps(self.store, run["ir_sha256"])
        graph = data.step_graph(ir, records)
        for node in graph["nodes"]:
            node["href"] = f"/runs/{quote(run_id, safe='')}/steps/{quote(node['id'], safe='')}"
        order = [node["id"] for node in graph["nodes"]]
        steps = [(name, records.get(name)) for name in order]
        return self.render(
            "run.html",
            run=run,
            steps=steps,
            graph=graph,
            has_ir=bool(ir),
            scripts=["graph"],
            refresh=run["status"] == "running",  # reload every 5 s while it runs
        )

    def step(self, run_id: str, name: str, *, query: Mapping[str, list[str]]) -> Response:
        run = self._run(run_id)
        records = self.store.step_runs(run_id)
        record = records.get(name)
        specs = data.ir_steps(self.store, run["ir_sha256"])
        spec = next((s for s in specs if s["name"] == name), None)
        if record is None and spec is None:
            raise NotFound(
                f"Run {run_id} has no step {name!r}; its steps: {', '.join(sorted(records))}."
            )
        recorded = sorted(((record or {}).get("outputs") or {}).items())
        made_by = data.producers(self.store, [str(i["id"]) for _, i in recorded if i.get("id")])
        outputs = []
        for output, info in recorded:
            producer = made_by.get(str(info.get("id")))
            outputs.append(
                {
                    "name": output,
                    "info": info,
                    "visualizations": data.visualizations(
                        self.store, str(info.get("id", "")), str(info.get("uri", ""))
                    ),
                    # A cache hit's outputs were written by an earlier run: link to it.
                    "made_by": producer if producer and producer["run_id"] != run_id else None,
                }
            )
        return self.render(
            "step.html",
            run=run,
            name=name,
            record=record or {},
            spec=spec or {},
            outputs=outputs,
            inputs=data.step_inputs(self.store, run_id, name),
        )

    def artifact(self, artifact_id: str, *, query: Mapping[str, list[str]]) -> Response:
        try:
            artifact = self.store.resolve_artifact(artifact_id)
        except BridgeError as exc:
            raise NotFound(str(exc)) from None
        return self.render(
            "artifact.html",
            artifact=artifact,
            consumers=self.store.consumers(artifact["artifact_id"]),
            reuses=self.store.cache_reuses(artifact["artifact_id"]),
            visualizations=data.visualizations(
                self.store, artifact["artifact_id"], artifact["uri"]
            ),
            preview=data.preview(artifact),
        )

    def visualization(
        self, artifact_id: str, name: str, *, query: Mapping[str, list[str]]
    ) -> Response:
        try:
            artifact = self.store.resolve_artifact(artifact_id)
            body, media_type = data.read_visualization(
                self.store, artifact["artifact_id"], artifact["uri"], name
            )
        except BridgeError as exc:
            raise NotFound(str(exc)) from None
        except OSError as exc:
            raise NotFound(
                f"The visualization {name!r} of artifact {artifact_id} is recorded but cannot be "
                f"read from the artifact store ({exc.strerror or exc}). Check that the artifact "
                "store is reachable from this machine (ZENML_BRIDGE_ARTIFACT_ROOT)."
            ) from None
        if media_type in _TEXT_TYPES:
            media_type = "text/plain"  # shown as text, never interpreted
        if media_type.startswith("text/"):
            media_type += "; charset=utf-8"
        return Response(200, body, media_type, {"Content-Security-Policy": VISUALIZATION_CSP})

    def compare(self, *, query: Mapping[str, list[str]]) -> Response:
        from zenml_bridge.compare import compare_runs

        refs = [r for value in query.get("run", []) for r in value.split(",") if r.strip()]
        report = compare_runs(self.store, refs)
        charts = [
            {
                "name": f"{row.get('step')}.{row.get('name')}" if row.get("step") else row["name"],
                "values": [v if _is_number(v) else None for v in row.get("values", [])],
            }
            for row in report["metrics"]
            if any(_is_number(v) for v in row.get("values", []))
        ]
        # Run ids share their pipeline and date: "#1 …6e26a0" tells them apart in a chart.
        labels = [f"#{i} \u2026{r['run_id'][-6:]}" for i, r in enumerate(report["runs"], 1)]
        return self.render(
            "compare.html",
            report=report,
            chart_data={"labels": labels, "charts": charts},
            scripts=["charts"],
        )

    # -- static files ---------------------------------------------------------------------------

    def static(self, segments: tuple[str, ...]) -> Response:
        name = posixpath.normpath("/".join(segments)) if segments else ""
        root = resources.files("zenml_bridge.dashboard") / "static"
        if not name or name.startswith((".", "/")) or any(s.startswith(".") for s in segments):
            return self.error(HTTPStatus.NOT_FOUND, "No such file.")
        target = root.joinpath(*name.split("/"))
        if not target.is_file():
            return self.error(HTTPStatus.NOT_FOUND, f"No static file {name!r}.")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        return Response(200, target.read_bytes(), kind, {"Cache-Control": "max-age=3600"})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _one(query: Mapping[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1].strip() or None if values else None


def _int(query: Mapping[str, list[str]], key: str, default: int) -> int:
    raw = _one(query, key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BridgeError(f"?{key}={raw!r} is not a whole number.") from None


# -- HTTP -------------------------------------------------------------------------------------


def make_handler(app: Dashboard, *, log_requests: bool = True) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "zenml-bridge-dashboard"
        sys_version = ""

        def do_GET(self) -> None:
            self._respond(head=False)

        def do_HEAD(self) -> None:
            self._respond(head=True)

        def _respond(self, *, head: bool) -> None:
            try:
                response = app.handle(self.path)
            except Exception as exc:  # a bug must not kill the server: log it, answer 500
                self.log_error("error on %s: %r", self.path, exc)
                response = app.error(HTTPStatus.INTERNAL_SERVER_ERROR, redact_text(repr(exc)))
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            headers = {"Content-Security-Policy": PAGE_CSP, **response.headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(response.body)

        def log_message(self, format: str, *args: Any) -> None:
            # One line per request on stderr, redacted (a path may carry a run id only).
            if log_requests:
                super().log_message(format, *(redact_text(str(a)) for a in args))

    return Handler


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    # A restarted dashboard may bind the port of one that just stopped (TIME_WAIT), but never a
    # port another program listens on: that still fails with "address in use".
    allow_reuse_address = True


def make_server(
    app: Dashboard, host: str, port: int, *, log_requests: bool = True
) -> DashboardServer:
    """Bind ``host:port`` (0 = a free port). Raises BridgeError when the port is taken."""
    import errno
    import socket

    try:
        return DashboardServer((host, port), make_handler(app, log_requests=log_requests))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BridgeError(
                f"Port {port} on {host} is already in use (another program, or another "
                "dashboard). Choose another with --port N, or --port 0 for a free one."
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            raise BridgeError(
                f"Cannot listen on {host}:{port} ({exc.strerror}): {host!r} is not an address "
                "of this machine. Use --host 127.0.0.1 (the default)."
            ) from None
        raise BridgeError(f"Cannot listen on {host}:{port} ({exc.strerror}).") from None
