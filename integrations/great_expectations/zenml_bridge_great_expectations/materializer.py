"""Stores a GX ``ExpectationSuite`` (what ``gx_profile`` returns) as ``suite.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from zenml_bridge.materializers.base import Materializer, join, prepare


class ExpectationSuiteMaterializer(Materializer):
    """GX's own suite JSON; the file is also the artifact's visualization."""

    name: ClassVar[str] = "great_expectations.suite"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = (
        "great_expectations.core.expectation_suite.ExpectationSuite",
    )

    def save(self, value: Any, folder: str, fs: Any) -> None:
        prepare(folder, fs)
        with fs.open(join(folder, "suite.json"), "w") as f:
            f.write(_text(value))

    def load(self, folder: str, fs: Any) -> Any:
        from zenml_bridge_great_expectations.suites import build_suite

        with fs.open(join(folder, "suite.json"), "r") as f:
            return build_suite("load", json.load(f))

    def visualizations(self, value: Any) -> Mapping[str, str | bytes]:
        return {"suite.json": _text(value)}


def _text(suite: Any) -> str:
    data = dict(suite.to_json_dict())
    data.pop("id", None)
    return json.dumps(data, indent=2, sort_keys=True, default=str)
