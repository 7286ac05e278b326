"""The ``great_expectations`` flavor of the ``data_validator`` stack component.

Stack-level defaults for the GX steps, in ``.zenml_bridge/config.yaml``::

    stacks:
      default:
        components:
          data_validator:
            flavor: great_expectations
            data_docs_dir: /srv/data-docs     # every validation page is also written here
            on_failure: stop                   # default of gx_validate's on_failure
            result_format: SUMMARY

A page goes to ``<data_docs_dir>/<pipeline>/<run id>/<step>.html``; the artifact keeps its own
copy as its visualization either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from zenml_bridge.components import DataValidator

#: Options of the component block (besides ``flavor``).
OPTIONS = ("data_docs_dir", "on_failure", "result_format")


class GreatExpectationsDataValidator(DataValidator):
    """Stack defaults for Great Expectations validation steps.

    Example:
        >>> GreatExpectationsDataValidator(on_failure="warn").option("on_failure", "stop")
        'warn'
    """

    flavor: ClassVar[str] = "great_expectations"

    def __init__(self, **config: Any) -> None:
        from zenml_bridge.validation import ON_FAILURE, check_component_options

        from zenml_bridge_great_expectations.steps import RESULT_FORMATS

        super().__init__(**config)
        choices = {"on_failure": ON_FAILURE, "result_format": RESULT_FORMATS}
        check_component_options(self.flavor, config, OPTIONS, choices)

    def option(self, key: str, default: Any) -> Any:
        """The component's value of ``key``, else ``default``."""
        value = self.config.get(key)
        return default if value is None else value

    @property
    def data_docs_dir(self) -> Path | None:
        value = self.config.get("data_docs_dir")
        return Path(str(value)).expanduser() if value else None


def active_validator() -> GreatExpectationsDataValidator | None:
    """The running step's stack ``data_validator`` when it is of this flavor, else None."""
    from zenml_bridge.validation import stack_validator

    found = stack_validator(GreatExpectationsDataValidator.flavor)
    return found if isinstance(found, GreatExpectationsDataValidator) else None


def data_docs_target(step_name: str) -> Path | None:
    """Where the stack wants this step's data-docs page, or None."""
    from zenml_bridge.runtime.context import _CURRENT

    validator = active_validator()
    context = _CURRENT.get()
    if validator is None or validator.data_docs_dir is None or context is None:
        return None
    return validator.data_docs_dir / context.pipeline_name / context.run_id / f"{step_name}.html"
