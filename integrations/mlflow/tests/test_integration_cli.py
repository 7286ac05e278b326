"""`zenml-bridge integration list`, the settings checks, and the light-import promise."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from typing import Any

import pytest
from zenml_bridge.cli.main import main
from zenml_bridge.errors import BridgeError

from zenml_bridge_mlflow.tracker import MLflowExperimentTracker


def test_integration_list_shows_mlflow(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["integration", "list"]) == 0
    out = capsys.readouterr().out
    header, *rows = out.strip().splitlines()
    assert header.split() == ["NAME", "DISTRIBUTION", "VERSION", "PROVIDES", "REQUIRES", "STATUS"]
    row = next(r for r in rows if r.startswith("mlflow "))
    assert "zenml-bridge-mlflow" in row
    assert metadata.version("zenml-bridge-mlflow") in row
    assert "experiment_tracker mlflow" in row and "materializer mlflow.model" in row
    assert "settings mlflow" in row
    assert f"mlflow {metadata.version('mlflow')}" in row

    assert main(["integration", "list", "--json", "--check"]) == 0
    items = {i["name"]: i for i in json.loads(capsys.readouterr().out)}
    assert items["mlflow"]["status"] == "ok"
    assert items["mlflow"]["module"] == "zenml_bridge_mlflow"


def test_core_and_listing_do_not_import_mlflow() -> None:
    code = (
        "import sys, zenml_bridge, zenml_bridge_mlflow\n"
        "from zenml_bridge.cli.main import main\n"
        "main(['integration', 'list'])\n"
        "print('HEAVY', sorted(m for m in ('mlflow', 'sklearn', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"tracking_url": "http://x"},
            "experiment_tracker (flavor mlflow) has no option 'tracking_url'. "
            "Did you mean 'tracking_uri'?",
        ),
        (
            {"tracking_uri": "/some/folder"},
            "experiment_tracker.tracking_uri '/some/folder' (from config) is a plain folder, "
            "which MLflow 3 refuses",
        ),
        ({"on_error": "ignore"}, "experiment_tracker.on_error is 'ignore'; use 'fail'"),
        ({"retries": "many"}, "experiment_tracker.retries is 'many'; give a whole number >= 0"),
    ],
)
def test_bad_settings_are_refused(config: dict[str, Any], message: str, tmp_path: Any) -> None:
    with pytest.raises(BridgeError, match=re.escape(message)):
        MLflowExperimentTracker(**{"home": str(tmp_path), **config})


def test_credentials_never_reach_links_or_messages() -> None:
    tracker = MLflowExperimentTracker(tracking_uri="http://user:secret@127.0.0.1:1")
    assert tracker.settings.display_uri == "http://127.0.0.1:1"
