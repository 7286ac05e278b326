"""StepSettings.parse: dataclass-driven validation that reports every problem at once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import pytest

from zenml_bridge.settings import StepSettings, StepSettingsError


@dataclass(frozen=True)
class TrackSettings(StepSettings):
    key = "track"
    autolog: bool = False
    mode: Literal["nested", "flat"] = "nested"
    every: int = 1
    ratio: float = 0.5
    tags: dict[str, str] = field(default_factory=dict)
    name: str | None = None


def test_defaults_and_values() -> None:
    assert TrackSettings.parse(None) == TrackSettings()
    parsed = TrackSettings.parse({"autolog": True, "ratio": 1, "tags": {"a": "b"}, "name": None})
    assert (parsed.autolog, parsed.ratio, parsed.tags) == (True, 1, {"a": "b"})


def test_all_problems_in_one_error() -> None:
    with pytest.raises(StepSettingsError) as caught:
        TrackSettings.parse(
            {"autolg": True, "mode": "deep", "every": True, "tags": {"a": 1}}, step="train"
        )
    assert caught.value.problems == (
        "The settings 'track' of step 'train' has no option 'autolg'. Did you mean 'autolog'? "
        "Options: autolog, mode, every, ratio, tags, name.",
        "The settings 'track' of step 'train': 'mode' is 'deep'; allowed: 'nested' or 'flat'.",
        "The settings 'track' of step 'train': 'every' is True; allowed: a whole number.",
        "The settings 'track' of step 'train': 'tags' is {'a': 1}; allowed: a mapping.",
    )
    assert str(caught.value).startswith("4 problems in step settings:")


def test_not_a_mapping() -> None:
    with pytest.raises(
        StepSettingsError, match=re.escape("must be a mapping of options, not list")
    ):
        TrackSettings.parse([1])  # type: ignore[arg-type]
