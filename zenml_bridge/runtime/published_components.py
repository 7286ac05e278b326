"""The stack's component configuration, published beside the IR for workers.

At compile time the component blocks of the stack (``components:`` and ``experiment_tracker:``)
are stored content-addressed at ``<artifact root>/.zenml_bridge/components/<sha256>.json``;
the generated DAG or YAML passes ``--components URI --components-sha256 HEX`` to the
entrypoint, which checks the hash and builds the same components on the worker. Secrets never
reach the file: a value is either free of secrets or an ``${ENV_VAR}`` reference, resolved
from the worker's environment when the component is built.

Example:
    >>> canonical({"experiment_tracker": {"flavor": "mlflow"}})
    b'{"components":{"experiment_tracker":{"flavor":"mlflow"}},"version":1}'
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zenml_bridge.components import secret_problems
from zenml_bridge.config import check_components
from zenml_bridge.errors import BridgeError

VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


def canonical(components: Mapping[str, Mapping[str, Any]]) -> bytes:
    """The stored document: sorted keys, no spaces, so equal configs share one file."""
    document = {"version": VERSION, "components": components}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def check_publishable(components: Mapping[str, Mapping[str, Any]], stack: str) -> None:
    """Refuse literal secrets (all of them listed) before anything is written.

    Raises:
        BridgeError: naming each component option and the ``${ENV_VAR}`` to use instead.
    """
    problems = secret_problems(components)
    if problems:
        lines = [
            f"The components of stack '{stack}' would be published for the workers with "
            f"secrets in them ({len(problems)} problem(s)); nothing was written:"
        ]
        lines += [f"  - {problem}" for problem in problems]
        lines.append("Fix them in .zenml_bridge/config.yaml (the stack's `components:`).")
        raise BridgeError("\n".join(lines))


def publish(
    components: Mapping[str, Mapping[str, Any]], artifact_root: str, stack: str = "default"
) -> tuple[str, str]:
    """Store the component config under the artifact root; returns ``(uri, sha256)``."""
    from zenml_bridge.runtime.code_archive import _put

    check_publishable(components, stack)
    data = canonical(components)
    sha = hashlib.sha256(data).hexdigest()
    return _put(artifact_root, f".zenml_bridge/components/{sha}.json", data), sha


def read(uri: str, sha256: str | None) -> dict[str, dict[str, Any]]:
    """The published component blocks at ``uri``, checked against ``sha256``.

    Raises:
        BridgeError: no or a malformed hash, a missing file, a different hash (changed after
            compiling), or a document that is not a component config.
    """
    from zenml_bridge.stores.artifacts import filesystem_for, is_local_url, local_path

    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise BridgeError(
            f"--components needs --components-sha256 with the sha256 the compile printed "
            f"(64 lower-case hex digits), not {str(sha256)[:80]!r}. Compile the pipeline again."
        )
    try:
        if is_local_url(uri):
            data = Path(local_path(uri)).read_bytes()
        else:
            data = bytes(filesystem_for(uri).cat_file(uri))
    except (FileNotFoundError, NotADirectoryError):
        raise BridgeError(
            f"The component config {uri} does not exist. Compile the pipeline again (it "
            "publishes the config) and check that workers use the same artifact store."
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BridgeError(
            f"The component config {uri} has sha256 {actual}, expected {sha256}: it was changed "
            "after compiling. Compile the pipeline again."
        )
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    if not isinstance(document, dict) or document.get("version") != VERSION:
        raise BridgeError(
            f"The component config {uri} is not a version {VERSION} component document. "
            "Compile the pipeline again with the zenml-bridge the workers run."
        )
    components = document.get("components")
    if not isinstance(components, dict):
        components = None
    check_components(components, f"component config {uri}")
    return {str(kind): dict(block) for kind, block in (components or {}).items()}


def apply(settings: Any, components: Mapping[str, Mapping[str, Any]]) -> Any:
    """``settings`` with the published components instead of the worker's own."""
    import dataclasses

    blocks = {kind: dict(block) for kind, block in components.items()}
    tracker = blocks.pop("experiment_tracker", None)
    return dataclasses.replace(settings, components=blocks, experiment_tracker=tracker)
