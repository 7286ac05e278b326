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
