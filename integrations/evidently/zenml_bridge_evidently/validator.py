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
from zenml_bridge.errors import BridgeError, did_you_mean
from zenml_bridge.validation import ON_FAILURE, stack_validator

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
        problems = [
            f"unknown option {key!r}{did_you_mean(key, OPTIONS)}"
            for key in sorted(set(config) - set(OPTIONS))
        ]
        if "on_failure" in config and config["on_failure"] not in ON_FAILURE:
            problems.append(
                f"on_failure={config['on_failure']!r} is not one of {', '.join(ON_FAILURE)}"
            )
        threshold = config.get("threshold")
        if threshold is not None and not (
            isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0
        ):
            problems.append(f"threshold={threshold!r} is not a share in [0, 1]")
        if problems:
            raise BridgeError(
                "The data_validator component (flavor evidently): "
                + "; ".join(problems)
                + f". Its options are: {', '.join(OPTIONS)}."
            )


def active_validator() -> EvidentlyDataValidator | None:
    """The running step's stack ``data_validator`` when it is of this flavor, else None."""
    found = stack_validator(EvidentlyDataValidator.flavor)
    return found if isinstance(found, EvidentlyDataValidator) else None
