"""`zenml-bridge init --template NAME [PATH]`: list, copy, run, refuse to overwrite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Shell

from zenml_bridge.templates import template_names


def test_list_names_each_template_with_its_description(shell: Shell) -> None:
    out = shell.cli("init", "--template", "list").stdout
    assert re.search(r"^minimal\s+two steps and a run config", out, re.M), out
    assert re.search(r"^sklearn\s+train and evaluate a scikit-learn classifier", out, re.M), out
    assert {"minimal", "sklearn"} <= set(template_names())


@pytest.mark.parametrize("name", template_names())
def test_template_is_ready_to_run(shell: Shell, tmp_path: Path, name: str) -> None:
    project = tmp_path / "proj"
    out = shell.cli("init", "--template", name, str(project)).stdout
    assert f"Copied template '{name}'" in out and "Initialized zenml-bridge" in out
    assert {p.name for p in project.iterdir()} >= {
        "README.md",
        "pipeline.py",
        "run.yaml",
        ".zenml_bridge",
    }
    assert not list(project.rglob("__pycache__")) and not list(project.glob(".zb-template-*"))
    first = shell.cli("run", "--config", "run.yaml", cwd=project).stdout
    done = re.search(r"Run \S+ completed .*\((\d+) completed\)", first)
    assert done, first
    steps = int(done.group(1))
    again = shell.cli("run", "--config", "run.yaml", cwd=project).stdout
    assert f"({steps} cached)" in again, again
    # Recorded in the project's own store (init made it), not in ZENML_BRIDGE_HOME.
    assert (project / ".zenml_bridge" / "metadata.db").is_file()
    assert not (tmp_path / "home" / "metadata.db").exists()
    shown = shell.cli("runs", "show", "latest", cwd=project).stdout
    assert "Status     completed" in shown


def test_existing_files_are_never_overwritten_without_force(shell: Shell, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pipeline.py").write_text("# mine\n")
    refused = shell.cli("init", "--template", "minimal", str(project), expect=2)
    assert "Template 'minimal' would overwrite pipeline.py" in refused.stderr
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr
    assert sorted(p.name for p in project.iterdir()) == ["pipeline.py"], "nothing half-written"
    assert (project / "pipeline.py").read_text() == "# mine\n"
    shell.cli("init", "--template", "minimal", str(project), "--force")
    assert "@pipeline" in (project / "pipeline.py").read_text()


def test_unknown_template_says_did_you_mean(shell: Shell, tmp_path: Path) -> None:
    refused = shell.cli("init", "--template", "sklern", str(tmp_path / "x"), expect=2)
    assert "There is no project template 'sklern'. Did you mean 'sklearn'?" in refused.stderr
    assert not (tmp_path / "x").exists()


def test_the_wheel_ships_every_template(tmp_path: Path) -> None:
    """Built as a user's pip would build it: the templates are package data of the wheel."""
    import shutil
    import subprocess
    import sys
    import zipfile

    from conftest import ROOT

    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed here (the `examples` env has it)")
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("zenml_bridge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in template_names():
        for file in ("README.md", "pipeline.py", "run.yaml"):
            assert f"zenml_bridge/templates/projects/{name}/{file}" in names, sorted(names)
