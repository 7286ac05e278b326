"""Seldon Core for zenml-bridge (see README.md)."""
