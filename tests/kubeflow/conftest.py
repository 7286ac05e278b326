"""The Kubeflow tests need kfp (``tox -e kubeflow``); without it they are skipped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("kfp", reason="needs kfp (tox -e kubeflow)")

# The golden shapes and their helpers (tests/golden/golden_support.py) are shared by backends.
GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
if str(GOLDEN_DIR) not in sys.path:
    sys.path.insert(0, str(GOLDEN_DIR))
