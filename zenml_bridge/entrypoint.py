"""The worker entrypoint: ``python -m zenml_bridge.entrypoint run-step ...``.

The only way a backend (Airflow, Kubeflow, the tests) runs a step. The command is kept here for
its name; the logic lives in :mod:`zenml_bridge.runtime.worker` (options, exit codes, what it
records), so that the runtime never imports this layer.
"""

from __future__ import annotations

from zenml_bridge.runtime.worker import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
