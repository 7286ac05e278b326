"""Fixtures of these tests: a fresh local stack per test (``make_settings``), the browser helper.

The data is scikit-learn's bundled iris set (no download), made bad in
gx_pipelines.py: nulls, out-of-range values, a missing column.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# gx_pipelines (steps the runner imports by module name) and the repository's tests/ folder
# (browser.py, integration_support.py).
for folder in (HERE, HERE.parents[2] / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from integration_support import make_settings  # noqa: E402, F401
