"""The behaviour table on the local runner (sequential and with --parallel)."""

from __future__ import annotations

from pathlib import Path

import pytest
from behaviour import CASES, Case, check
from runners import run_local

pytestmark = pytest.mark.conformance_local


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_local(case: Case, tmp_path: Path) -> None:
    outcome = run_local(case, tmp_path / "local")
    check(case, outcome)
    again = run_local(case, tmp_path / "again")  # content hashes are reproducible
    assert (again.hashes, again.tracked) == (outcome.hashes, outcome.tracked)
