"""The light entry-point reader gives what importlib.metadata gives (issue 16, item 5)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points as reference
from pathlib import Path

import pytest

from zenml_bridge.entry_points import entry_points


@pytest.mark.parametrize("group", ["console_scripts", "pytest11", "zenml_bridge.materializers"])
def test_same_entry_points_as_importlib_metadata(group: str) -> None:
    ours = [(ep.name, ep.value) for ep in entry_points(group)]
    theirs = [(ep.name, ep.value) for ep in reference(group=group)]
    assert sorted(ours) == sorted(theirs)


def test_first_distribution_of_a_name_wins_and_load_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder, value in (("a", "json:dumps"), ("b", "json:loads")):
        info = tmp_path / folder / "demo_pkg-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "entry_points.txt").write_text(
            f"# comment\n[zb.test]\nthing = {value}\n\n[other]\nx = os:path\n"
        )
    monkeypatch.setattr(sys, "path", [str(tmp_path / "a"), str(tmp_path / "b")])
    found = entry_points("zb.test")
    assert [(ep.name, ep.value, ep.dist.name) for ep in found] == [
        ("thing", "json:dumps", "demo_pkg")
    ]
    import json

    assert found[0].load() is json.dumps


def test_storing_an_output_does_not_import_importlib_metadata(tmp_path: Path) -> None:
    code = (
        "import sys; from zenml_bridge.materializers import select; select([1, 2]); "
        "print('importlib.metadata' in sys.modules, 'email' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
