"""The Kubeflow tests need kfp (``tox -e kubeflow``); without it they are skipped."""

from __future__ import annotations

import pytest

pytest.importorskip("kfp", reason="needs kfp (tox -e kubeflow)")
