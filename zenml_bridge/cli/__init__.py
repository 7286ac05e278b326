"""The ``zenml-bridge`` command line. Each command group lives in its own ``*_cmd`` module."""
