"""Errors of zenml-bridge: one base class, :class:`BridgeError`, for every user error."""

from __future__ import annotations

from zenml_bridge.ir.errors import BridgeError, IRValidationError, did_you_mean

__all__ = ["BridgeError", "IRValidationError", "did_you_mean"]
