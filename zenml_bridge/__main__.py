"""``python -m zenml_bridge``: the same as the ``zenml-bridge`` command."""

from zenml_bridge.cli.main import main

raise SystemExit(main())
