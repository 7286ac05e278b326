"""The entry-point scan for materializer plugins happens only when needed (issue 16, item 5):
checking or loading a built-in's artifact never scans the installed distributions; selecting a
materializer for a value still does (a plugin may win over a built-in), and a plugin may not
take a built-in's name."""

from __future__ import annotations

import json
import re
from pathlib import Path

from test_registry import _install_plugin, _run

PROBE = """
import json

from zenml_bridge import entry_points as metadata
from zenml_bridge.materializers import registry

scans = []
real = metadata.entry_points


def counting(group):
    scans.append(group)
    return real(group)


metadata.entry_points = counting
steps = []
steps.append(("version_of", registry.version_of("pandas.dataframe"), len(scans)))
steps.append(("get", registry.get("builtins.json").name, len(scans)))
steps.append(("select", registry.select([1]).name, len(scans)))
steps.append(("plugin", registry.version_of("demo.point"), len(scans)))
print(json.dumps(steps))
"""


def test_built_in_names_need_no_scan_select_scans_once(tmp_path: Path) -> None:
    _install_plugin(tmp_path, "demo.point = zb_demo_plugin:PointMaterializer\n")
    result = _run(PROBE, path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        ["version_of", "1", 0],  # a cache hit's version check: no scan
        ["get", "builtins.json", 0],  # loading a built-in's artifact: no scan
        ["select", "builtins.json", 1],  # storing a value: one scan (plugins may win)
        ["plugin", "2", 1],  # found by that scan, not scanned again
    ]


def test_a_plugin_named_like_a_built_in_is_refused(tmp_path: Path) -> None:
    _install_plugin(tmp_path, "builtins.json = zb_demo_plugin:PointMaterializer\n")
    result = _run(
        """
        from zenml_bridge import BridgeError
        from zenml_bridge.materializers import select
        try:
            select(1)
        except BridgeError as exc:
            print(exc)
        """,
        path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    expected = (
        "The materializer entry point 'builtins.json = zb_demo_plugin:PointMaterializer' "
        "(group 'zenml_bridge.materializers') takes the name of a built-in materializer. Give "
        "it a name of its own (e.g. 'mylib.frame'): built-in names always mean the built-in, "
        "so stored artifacts load the same everywhere."
    )
    assert re.fullmatch(re.escape(expected), result.stdout.strip())
