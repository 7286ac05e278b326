"""What serving a model with BentoML costs, beside a baseline server and in-process prediction.

Measures, in one temporary BentoML home:
- baseline: ``start_server`` + health wait + ``stop_group`` of ``python -m http.server``
  (the process-group machinery alone);
- ``build_bento`` of an iris LogisticRegression (save to the model store + build);
- ``bentoml serve``: start until ``/readyz`` answers, then stop of the whole group;
- one ``POST /predict`` of 5 rows (median of ``--requests``) beside ``model.predict`` in process.

    python integrations/bentoml/benchmarks/bench_serving.py [--requests 50]

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")


def timed(action):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from zenml_bridge.deployers import start_server, stop_group

    from zenml_bridge_bentoml.bento import build_bento

    root = Path(tempfile.mkdtemp(prefix="zb-bench-serving-"))
    home = root / "bentoml"
    rows: list[tuple[str, float]] = []

    server = [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
    seconds, (pgid, _) = timed(
        lambda: start_server(
            server, log_path=root / "http.log", health_url="http://127.0.0.1:{port}/"
        )
    )
    rows.append(("baseline http.server: start until healthy", seconds))
    rows.append(("baseline http.server: stop group", timed(lambda: stop_group(pgid))[0]))

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    seconds, tag = timed(lambda: build_bento(model, name="bench-iris", home=home))
    rows.append(("build_bento (save model + build Bento)", seconds))

    env = dict(os.environ, BENTOML_HOME=str(home))
    serve = [sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1",
             "--port", "{port}"]  # fmt: skip
    seconds, (pgid, port) = timed(
        lambda: start_server(
            serve,
            log_path=root / "bento.log",
            health_url="http://127.0.0.1:{port}/readyz",
            env=env,
            timeout=300,
        )
    )
    rows.append(("bentoml serve: start until /readyz", seconds))
    try:
        batch = x[:5].tolist()
        body = json.dumps({"data": batch}).encode()
        latencies = []
        for _ in range(args.requests):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/predict",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            start = time.perf_counter()
            with urllib.request.urlopen(request) as response:
                response.read()
            latencies.append(time.perf_counter() - start)
        rows.append(
            (f"POST /predict, 5 rows (median of {args.requests})", statistics.median(latencies))
        )
        local = [timed(lambda: model.predict(x[:5]))[0] for _ in range(args.requests)]
        rows.append(
            ("baseline: model.predict in process, 5 rows (median)", statistics.median(local))
        )
    finally:
        rows.append(("bentoml serve: stop group", timed(lambda: stop_group(pgid))[0]))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value * 1000:10.1f} ms")


if __name__ == "__main__":
    main()
