"""Pipelines of several shapes; every compiler's output for them is a checked-in golden file."""

SHAPES = ("linear", "fan_out_in", "diamond", "multi_output", "params")
