"""``zenml-bridge dashboard [--host H] [--port N]``: serve the read-only dashboard locally."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
from typing import Any

DEFAULT_PORT = 8237


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="serve a local, read-only web page of runs, step graphs, artifacts, comparisons",
        description="Serve a read-only web dashboard of the metadata and artifact stores of "
        "the active configuration (ZENML_BRIDGE_METADATA_URL, the project's stack). Ctrl-C "
        "stops it.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: only this machine; the dashboard has "
        "no login)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = free)"
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from zenml_bridge.config import load_settings
    from zenml_bridge.errors import BridgeError

    if not 0 <= args.port <= 65535:
        raise BridgeError(f"--port {args.port} is not a port number; use 0 to 65535.")
    from zenml_bridge.dashboard.data import open_store
    from zenml_bridge.dashboard.server import Dashboard, make_server
    from zenml_bridge.stores.metadata import describe_url

    settings = load_settings()
    store = open_store(settings.metadata_url)
    app = Dashboard(store, url=settings.metadata_url)
    server = make_server(app, args.host, args.port)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{host}]" if ":" in host else host
    print(f"zenml-bridge dashboard of {describe_url(settings.metadata_url)} (read-only)")
    if not _is_loopback(host):
        print(
            f"Warning: listening on {host}, reachable from other machines; the dashboard has "
            "no login. Use --host 127.0.0.1 to keep it on this machine.",
            file=sys.stderr,
        )

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        # Printed inside the try: a Ctrl-C right after the URL appears is a clean stop too.
        print(f"Serving on http://{shown}:{port}/  (Ctrl-C stops it)", flush=True)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
    print("Dashboard stopped.", flush=True)
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
