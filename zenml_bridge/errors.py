"""Errors of zenml-bridge: one base class, :class:`BridgeError`, for every user error."""

from __future__ import annotations

import errno
from typing import Any

from zenml_bridge.ir.errors import BridgeError, IRValidationError, did_you_mean

__all__ = [
    "STOP_EXIT_CODE",
    "BridgeError",
    "IRValidationError",
    "StopPipeline",
    "did_you_mean",
    "disk_full_error",
]

#: Exit code of a step process that raised :class:`StopPipeline`: Airflow's default
#: ``skip_on_exit_code``, so the task ends skipped and its downstream tasks are skipped too.
STOP_EXIT_CODE = 99


class StopPipeline(Exception):
    """Raise in a step to stop the pipeline on purpose (a gate): the run ends ``stopped``.

    The step is recorded ``stopped`` with ``reason`` (not ``failed``, and never retried), the
    outputs given are stored so the report that motivated the stop is kept, steps downstream
    are ``skipped`` and the run is ``stopped``. ``outputs`` is the value of a single-output
    step, a dict output name -> value, or the tuple the step would return; outputs not given
    are not stored. See docs/runtime.md for how each backend shows it.

    Example:
        >>> try:
        ...     raise StopPipeline("drift share 0.6 > 0.3", outputs={"report": "<p>0.6</p>"})
        ... except StopPipeline as stop:
        ...     print(stop.reason, sorted(stop.outputs))
        drift share 0.6 > 0.3 ['report']
    """

    def __init__(self, reason: str, outputs: Any = None) -> None:
        super().__init__(reason)
        self.reason = str(reason)
        self.outputs = outputs

    def __reduce__(self) -> tuple[Any, ...]:  # survives pickling to a parent process
        return (type(self), (self.reason, self.outputs))


#: errno values that mean "the disk (or the user's quota) is full".
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full_error(exc: BaseException, where: str, setting: str) -> BridgeError | None:
    """A BridgeError for a write that failed on a full disk, else None (a real failure).

    Args:
        exc: the error a write raised.
        where: what was being written, e.g. ``"the artifact folder /data/zb/train/model"``.
        setting: the environment variable that chooses another location.

    Example:
        >>> disk_full_error(OSError(errno.ENOSPC, "No space left on device"), "x", "VAR")
        BridgeError('No space left on device writing x. Free space there, or set VAR to a location with room; nothing half-written was kept.')
    """  # noqa: E501
    if not isinstance(exc, OSError) or exc.errno not in DISK_FULL:
        return None
    return BridgeError(
        f"{exc.strerror or 'No space left on device'} writing {where}. Free space there, or set "
        f"{setting} to a location with room; nothing half-written was kept."
    )
