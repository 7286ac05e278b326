"""Stack components: the services a stack names (a tracker, a deployer, a data validator).

A component has a ``kind`` and a ``flavor``. A stack in ``.zenml_bridge/config.yaml`` names
its components, one per kind::

    stacks:
      default:
        components:
          experiment_tracker: {flavor: mlflow, tracking_uri: http://127.0.0.1:5000}
          data_validator: {flavor: great_expectations}

Flavors are found in the plugin table (entry-point group ``zenml_bridge.flavors``, entry name
``<kind>.<flavor>``) and built with the options of their block. A step reaches its stack's
component with ``get_step_context().component("data_validator")``.

Example:
    >>> class EchoValidator(DataValidator):
    ...     flavor = "echo"
    >>> EchoValidator(threshold=0.3).config
    {'threshold': 0.3}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from zenml_bridge.errors import BridgeError
from zenml_bridge.redact import is_secret_key, redact_text

#: Kinds the core knows; any other ``<kind>`` with an installed flavor works too.
KINDS = ("experiment_tracker", "model_deployer", "data_validator")


class StackComponent:
    """Base class of every component flavor.

    Subclasses set ``kind`` (through their kind's base class) and ``flavor``, and take their
    options as keyword arguments. ``local_only = True`` marks a component that works only on
    this machine (e.g. it starts local processes): compiling for Airflow or Kubeflow with it in
    the stack fails with a clear error.
    """

    kind: ClassVar[str] = ""
    flavor: ClassVar[str] = ""
    local_only: ClassVar[bool] = False

    def __init__(self, **config: Any) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind}.{self.flavor}>"


class DataValidator(StackComponent):
    """A data validation service (Great Expectations, Evidently, ...)."""

    kind: ClassVar[str] = "data_validator"


#: ``${NAME}``: a reference to an environment variable, resolved where the component is built.
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def secret_problems(components: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Literal secrets in component blocks: a non-empty text under a key that names a secret
    (``password``, ``token``, ``api_key``, ...) that is not an ``${ENV_VAR}`` reference, or a
    URL with credentials in it. Every one is listed (values never shown).

    Example:
        >>> secret_problems({"model_deployer": {"flavor": "x", "api_token": "abc"}})[0][:60]
        "model_deployer.api_token holds a literal secret; write it as"
    """
    problems: list[str] = []

    def walk(value: Any, path: str, key: str) -> None:
        if isinstance(value, Mapping):
            for child_key, child in value.items():
                walk(child, f"{path}.{child_key}", str(child_key))
        elif isinstance(value, list | tuple):
            for index, child in enumerate(value):
                walk(child, f"{path}[{index}]", key)
        elif isinstance(value, str) and value:
            bare = REFERENCE.sub("", value)
            if is_secret_key(key) and bare.strip():
                variable = re.sub(r"[^A-Z0-9]+", "_", path.upper()).strip("_")
                problems.append(
                    f"{path} holds a literal secret; write it as ${{{variable}}} (an environment "
                    "variable, resolved where the step runs) and set that variable on this "
                    "machine and on the workers."
                )
            elif _literal_credentials(value):
                problems.append(
                    f"{path} is a URL with credentials ({redact_text(value)}); put the "
                    "credentials in an environment variable and write them as ${VARIABLE} in "
                    "the URL, or give them the way the service reads them from the environment."
                )

    for kind, block in components.items():
        walk(block, kind, kind)
    return problems


def _literal_credentials(text: str) -> bool:
    """True when a URL in ``text`` carries credentials that are not all ``${VAR}`` references:
    what redaction would hide must consist of references only."""
    import difflib

    marked = REFERENCE.sub("\x00", text)  # one character per reference
    redacted = redact_text(marked)
    if redacted == marked:
        return False
    matcher = difflib.SequenceMatcher(a=marked, b=redacted, autojunk=False)
    for tag, start, end, _, _ in matcher.get_opcodes():
        if tag in ("replace", "delete") and marked[start:end].replace("\x00", ""):
            return True
    return False


def resolve_references(value: Any, where: str) -> Any:
    """``value`` with every ``${NAME}`` replaced by the environment variable ``NAME``.

    Raises:
        BridgeError: a referenced variable is not set (naming it and ``where``).
    """
    if isinstance(value, Mapping):
        return {k: resolve_references(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise BridgeError(
                f"{where} refers to ${{{name}}}, but the environment variable {name} is not set "
                "here. Set it in the environment of the process that runs the step (on Airflow "
                "and Kubeflow: the workers' environment, e.g. from a Kubernetes Secret)."
            )
        return found

    return REFERENCE.sub(lookup, value)


def flavor_entry(kind: str, flavor: str) -> str:
    """The plugin-table name of a flavor: ``experiment_tracker.mlflow``."""
    return f"{kind}.{flavor}"


def component_class(kind: str, flavor: str) -> type[StackComponent]:
    """The class registered for ``kind`` and ``flavor`` (imports its module).

    Raises:
        BridgeError: no such flavor is installed (with did-you-mean and the flavors of that
            kind), or the entry point does not name a StackComponent.
    """
    from zenml_bridge import plugins

    name = flavor_entry(kind, flavor)
    if plugins.find_plugin(plugins.FLAVORS, name) is None:
        of_kind = [n.split(".", 1)[1] for n in plugins.plugin_names(plugins.FLAVORS)
                   if n.startswith(kind + ".")]  # fmt: skip
        from zenml_bridge.errors import did_you_mean

        raise BridgeError(
            f"There is no {kind} flavor {flavor!r}."
            + did_you_mean(flavor, of_kind)
            + f" Installed {kind} flavors: {', '.join(sorted(of_kind)) or 'none'}. Install the "
            f"integration that provides it (e.g. pip install zenml-bridge-{flavor or 'NAME'}); "
            f"it registers '{name}' in the entry-point group '{plugins.FLAVORS}'."
        )
    cls = plugins.load_plugin(plugins.FLAVORS, name)
    # Trackers written before StackComponent existed still duck-type as components.
    legacy = isinstance(cls, type) and kind == "experiment_tracker"
    if not (isinstance(cls, type) and issubclass(cls, StackComponent)) and not legacy:
        raise BridgeError(
            f"The {kind} flavor '{flavor}' points at {cls!r}, not a subclass of "
            "zenml_bridge.components.StackComponent. Fix the package that provides it."
        )
    found: type[StackComponent] = cls
    return found


def build_component(kind: str, config: Mapping[str, Any]) -> StackComponent:
    """An instance of the flavor a component block names (``{flavor: NAME, ...options}``)."""
    options = dict(config)
    flavor = options.pop("flavor", None)
    if not isinstance(flavor, str) or not flavor:
        raise BridgeError(
            f"The stack component '{kind}' has no 'flavor'. Write it as "
            f"`{kind}: {{flavor: NAME, ...}}` in the stack's components."
        )
    return component_class(kind, flavor)(**resolve_references(options, kind))
