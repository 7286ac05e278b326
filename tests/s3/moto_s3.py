"""moto's S3-compatible server on 127.0.0.1 and a counting proxy in front of it.

``MotoS3()`` starts ``python -m moto.server`` on a free port in its own process group and
stops the whole group on ``close()``; ``CountingProxy(target)`` forwards every request to it
and counts requests (by method) and body bytes each way, so a test or benchmark sees exactly
what a client moved. Used by tests/s3 and benchmarks/bench_remote.py.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoS3:
    """moto's server (all services; S3 is what we use) on 127.0.0.1."""

    def __init__(self, log_path: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = open(log_path or os.devnull, "wb")  # noqa: SIM115 - closed below
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"moto server did not start (log: {log_path})") from None
                time.sleep(0.2)

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class CountingProxy:
    """An HTTP proxy on 127.0.0.1 that counts what passes through it.

    ``counts()`` -> ``{"requests": {METHOD: n}, "sent": bytes uploaded (request bodies),
    "received": bytes downloaded (response bodies), "copies": server-side copy requests}``;
    ``GET /__counts__`` on the proxy answers the same as JSON (for child processes);
    ``reset()`` starts again.
    """

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self._lock = threading.Lock()
        self.reset()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                if self.path == "/__counts__":
                    body = json.dumps(proxy.counts()).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                body = self._body()
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"
                }
                if body or "content-length" in {k.lower() for k in headers}:
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(host, int(port), timeout=300)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    self.send_response(response.status, response.reason)
                    for key, value in response.getheaders():
                        if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    conn.close()
                with proxy._lock:
                    proxy._requests[self.command] += 1
                    if "x-amz-copy-source" in {k.lower() for k in headers}:
                        proxy._copies += 1
                    proxy._sent += len(body)
                    proxy._received += len(payload) if self.command != "HEAD" else 0

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up early (not ours to report)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self._requests: Counter[str] = Counter()
            self._sent = 0
            self._received = 0
            self._copies = 0

    def counts(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "sent": self._sent,
                "received": self._received,
                "copies": self._copies,
            }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fetch_counts(proxy_url: str) -> dict[str, Any]:
    """The counts of the proxy at ``proxy_url`` (from another process)."""
    with urllib.request.urlopen(f"{proxy_url}/__counts__", timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment for s3fs/botocore clients talking to the server (dummy credentials)."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
    }


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    env = s3_env(endpoint)
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    ).create_bucket(Bucket=bucket)
