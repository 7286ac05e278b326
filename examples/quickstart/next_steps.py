"""Printed after the README's quickstart command: where to look next.

python examples/quickstart/next_steps.py
"""

from __future__ import annotations

from pathlib import Path

SRC = "examples/quickstart/pipeline.py:training"


def latest_run() -> str:
    """The id of the newest recorded run, or 'latest' when none can be read."""
    from zenml_bridge.cli.common import open_store
    from zenml_bridge.errors import BridgeError

    try:
        return str(open_store().resolve_run("latest")["run_id"])
    except BridgeError:
        return "latest"


def main() -> None:
    run = latest_run()
    here = Path.cwd()
    print(
        f"""
The quickstart ran. Where to look next:

  zenml-bridge runs show {run}
      the run: steps, cache hits, parameters, metrics, artifacts
  zenml-bridge run {SRC} -p rows=500 -p C=0.1
  zenml-bridge runs compare {run} latest --html compare.html
      what a parameter change did (only train and evaluate run again)
  zenml-bridge dashboard
      runs, step graphs, artifacts and comparisons in the browser (127.0.0.1)

The same pipeline for an orchestrator:

  zenml-bridge compile {SRC} --target airflow --out dags/
      writes dags/zenml_bridge__training.py for Airflow 2.10+/3.x (docs/airflow.md)
  zenml-bridge compile {SRC} --target kubeflow --image IMAGE --out training.yaml
      Kubeflow Pipelines v2 YAML; needs pip install "zenml-bridge[kubeflow]" (docs/kubeflow.md)

More examples: examples/e2e_training/ (validation, drift, MLflow, BentoML), and
`zenml-bridge init --template list` for project templates. (Run from {here}.)"""
    )


if __name__ == "__main__":
    main()
