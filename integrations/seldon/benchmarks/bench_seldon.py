"""The local Seldon server: time until healthy, and prediction latency beside in-process predict.

Stores an iris LogisticRegression as the scikit-learn materializer does, serves it with the
``seldon`` deployer (seldon-core's REST wrapper on 127.0.0.1) several times, and prints:
start-to-healthy seconds (median), the median latency of ``POST /api/v1.0/predictions`` for
1 row and for 100 rows, and the baseline: ``model.predict`` of the same rows in this process.
The difference is the cost of the Seldon protocol (HTTP, JSON, seldon-core's decoding).

    python integrations/seldon/benchmarks/bench_seldon.py [--starts 3] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def post(url: str, rows: list[list[float]]) -> None:
    body = json.dumps({"data": {"ndarray": rows}}).encode()
    request = urllib.request.Request(
        f"{url}/api/v1.0/predictions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def median_ms(call: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ZENML_BRIDGE_HOME"] = str(Path(tmp) / "home")
        os.chdir(tmp)
        from zenml_bridge_seldon.deployer import SeldonModelDeployer

        features, target = load_iris(return_X_y=True)
        model = LogisticRegression(max_iter=500).fit(features, target)
        folder = Path(tmp) / "model"
        folder.mkdir()
        joblib.dump(model, folder / "model.joblib")
        artifact = {"id": None, "uri": str(folder), "sha256": "", "materializer": "sklearn.joblib"}
        one = [list(map(float, features[0]))]
        hundred = [list(map(float, row)) for row in features[:100]]

        deployer = SeldonModelDeployer()
        starts, url, last = [], "", None
        for _ in range(args.starts):
            begin = time.perf_counter()
            deployment = deployer.deploy(artifact, "bench", {})
            starts.append(time.perf_counter() - begin)
            if last is not None:
                deployer.stop(last.id)
            last, url = deployment, deployment.url
        try:
            post(url, one)  # warm
            http_1 = median_ms(lambda: post(url, one), args.requests)
            http_100 = median_ms(lambda: post(url, hundred), args.requests)
        finally:
            assert last is not None
            deployer.stop(last.id)
        local_1 = median_ms(lambda: model.predict(one), args.requests)
        local_100 = median_ms(lambda: model.predict(hundred), args.requests)

    print(f"{'measure':<40}{'seldon REST':>14}{'in-process':>14}")
    print(
        f"{'start until /health/ping answers (s)':<40}{statistics.median(starts):>14.2f}{'-':>14}"
    )
    print(f"{'predict 1 row (ms, median)':<40}{http_1:>14.2f}{local_1:>14.3f}")
    print(f"{'predict 100 rows (ms, median)':<40}{http_100:>14.2f}{local_100:>14.3f}")


if __name__ == "__main__":
    main()
