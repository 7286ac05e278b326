"""Serve a model with seldon-core's own REST wrapper, bound to one host (127.0.0.1 by default).

``seldon-core-microservice`` always binds 0.0.0.0 and forks a metrics server and workers that
outlive it. This runs the very same Flask app (``seldon_core.wrapper.get_rest_microservice``:
the same routes, request decoding and response encoding as in a cluster) on the host given,
in one process plus the metrics manager process that seldon-core's ``SeldonMetrics`` starts.
The deployer starts it in its own process group and stops the whole group.

Usage::

    python -m zenml_bridge_seldon.serve --model-uri DIR [--model-sha256 HEX] --port 8000
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zenml_bridge_seldon.serve")
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--model-sha256", default="")
    parser.add_argument("--method", default="predict")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )

    from seldon_core.metrics import SeldonMetrics
    from seldon_core.wrapper import get_rest_microservice
    from werkzeug.serving import make_server

    from zenml_bridge_seldon.model import SeldonModel

    user_model = SeldonModel(args.model_uri, args.model_sha256, args.method)
    # Load before binding: once the port answers /health/ping, predictions work.
    user_model.load()
    metrics = SeldonMetrics(worker_id_func=os.getpid)
    app = get_rest_microservice(user_model, metrics)
    server = make_server(args.host, args.port, app, threaded=True)
    print(
        f"seldon-core REST wrapper serving {args.model_uri} on "
        f"http://{args.host}:{server.server_port}",
        flush=True,
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
