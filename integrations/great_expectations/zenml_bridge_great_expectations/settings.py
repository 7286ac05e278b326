"""The ``great_expectations`` step settings block: per-step defaults of ``gx_validate``.

Example (a pipeline whose GX steps warn instead of stopping)::

    @pipeline(settings={"great_expectations": {"on_failure": "warn"}})
    def checked() -> None:
        gx_validate(load(), suite="suites/iris.json")

Order of precedence for each option: the argument given to the step, then this block, then the
stack's ``data_validator`` component (flavor ``great_expectations``), then the built-in default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zenml_bridge.settings import StepSettings


@dataclass(frozen=True)
class GreatExpectationsSettings(StepSettings):
    """Options of the ``great_expectations`` block of ``@step(settings=...)``.

    Attributes:
        on_failure: ``stop``, ``fail`` or ``warn`` (see ``gx_validate``).
        result_format: GX's detail per expectation result.
        data_docs: write the page to the data validator's ``data_docs_dir`` too (when set).
    """

    key: ClassVar[str] = "great_expectations"

    on_failure: Literal["stop", "fail", "warn"] | None = None
    result_format: Literal["BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE"] | None = None
    data_docs: bool = True
