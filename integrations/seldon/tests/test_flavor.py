"""The seldon flavor is found through its entry point; a stack without it is told what to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import seldon_pipelines as sp
from conftest import seldon_servers, write_stack
from zenml_bridge import plugins
from zenml_bridge.components import component_class
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import run_pipeline

from zenml_bridge_seldon.deployer import SeldonModelDeployer


def test_flavor_entry_point() -> None:
    assert "model_deployer.seldon" in plugins.plugin_names(plugins.FLAVORS)
    cls = component_class("model_deployer", "seldon")
    assert cls is SeldonModelDeployer
    assert (cls.kind, cls.flavor, cls.local_only) == ("model_deployer", "seldon", True)


def test_a_stack_without_a_model_deployer(home: Path) -> None:
    write_stack(home.parent)  # no components
    with pytest.raises(BridgeError, match=re.escape("has no model_deployer component")):
        run_pipeline(sp.serve_iris)
    assert seldon_servers(str(home.parent)) == []


def test_airflow_compile_refuses_the_local_only_deployer(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """(Kubeflow refuses it the same way; kfp does not install beside seldon-core.)"""
    from zenml_bridge.cli.main import main

    dags = home.parent / "dags"
    code = main(
        ["compile", "seldon_pipelines:serve_iris", "--target", "airflow", "--out", str(dags)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "the model_deployer flavor 'seldon' works only on this machine (local_only)" in err
    assert "Traceback" not in err
    assert not dags.exists() or not any(dags.iterdir())
