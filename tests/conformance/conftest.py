"""The conformance suite: the behaviour table (behaviour.py) run on every backend.

``test_local.py`` runs in the ``runtime`` env, ``test_airflow.py`` in ``airflow3``/``airflow2``
(skipped where Airflow is not installed), ``test_kubeflow.py`` in ``kubeflow`` (skipped without
kfp). Each marks its backend (``-m conformance_airflow`` etc., markers in pyproject.toml).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
