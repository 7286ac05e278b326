"""The ``evidently`` step settings block: per-step defaults of the Evidently gates.

Example::

    strict = drift_gate.with_settings(evidently={"threshold": 0.1, "on_failure": "fail"})

Order of precedence for each option: the argument given to the step, then this block, then the
stack's ``data_validator`` component (flavor ``evidently``), then the built-in default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zenml_bridge.settings import StepSettings


@dataclass(frozen=True)
class EvidentlySettings(StepSettings):
    """Options of the ``evidently`` block of ``@step(settings=...)``.

    Attributes:
        threshold: the largest share of drifted columns ``drift_gate`` passes.
        on_failure: ``stop``, ``fail`` or ``warn`` when a gate fails (``drift_gate``'s
            ``on_drift``, ``evidently_tests``' ``on_failure``).
    """

    key: ClassVar[str] = "evidently"

    threshold: float | None = None
    on_failure: Literal["stop", "fail", "warn"] | None = None
