"""The ``evidently`` flavor of the ``data_validator`` stack component: stack-wide gate defaults.

In ``.zenml_bridge/config.yaml``::

    stacks:
      default:
        components:
          data_validator:
            flavor: evidently
            threshold: 0.2        # drift_gate's default share of drifted columns
            on_failure: warn      # what drift_gate and evidently_tests do by default
"""

from __future__ import annotations

from typing import Any, ClassVar

from zenml_bridge.components import DataValidator
from zenml_bridge.validation import ON_FAILURE, check_component_options, stack_validator

#: Options of the component block (besides ``flavor``).
OPTIONS = ("threshold", "on_failure")


class EvidentlyDataValidator(DataValidator):
    """Stack defaults for the Evidently gates.

    Example:
        >>> EvidentlyDataValidator(threshold=0.2).config
        {'threshold': 0.2}
    """

    flavor: ClassVar[str] = "evidently"

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        threshold = config.get("threshold")
        extra = []
        if threshold is not None and not (
            isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0
        ):
            extra.append(f"threshold={threshold!r} is not a share in [0, 1]")
        check_component_options(self.flavor, config, OPTIONS, {"on_failure": ON_FAILURE}, extra)


def active_validator() -> EvidentlyDataValidator | None:
    """The running step's stack ``data_validator`` when it is of this flavor, else None."""
    found = stack_validator(EvidentlyDataValidator.flavor)
    return found if isinstance(found, EvidentlyDataValidator) else None
