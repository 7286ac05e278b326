"""Errors of zenml-bridge: one base class, :class:`BridgeError`, for every user error."""

from __future__ import annotations

import errno

from zenml_bridge.ir.errors import BridgeError, IRValidationError, did_you_mean

__all__ = ["BridgeError", "IRValidationError", "did_you_mean", "disk_full_error"]

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
