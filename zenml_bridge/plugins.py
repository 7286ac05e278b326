"""The plugin table: every name a plugin can be found by, built-in or installed.

Built-ins are ``"module:attr"`` strings (imported only when loaded); third parties add entries
through ``importlib.metadata`` entry points. This module is the one place that reads entry
points. Groups:

- ``zenml_bridge.flavors``: stack component flavors, entry name ``<kind>.<flavor>`` (e.g.
  ``experiment_tracker.mlflow``). The older group ``zenml_bridge.experiment_trackers`` (entry
  name = flavor) is still read, as ``experiment_tracker.<name>``.
- ``zenml_bridge.settings``: step settings classes, entry name = the settings block key.
- ``zenml_bridge.materializers``, ``zenml_bridge.compilers``, ``zenml_bridge.integrations``.

The installed distributions are scanned at most once per group and ``sys.path``, and only when
a name is asked for that is not built in, or a listing is asked for.

Example:
    >>> from zenml_bridge.plugins import COMPILERS, plugin_names
    >>> "airflow" in plugin_names(COMPILERS)
    True
"""

from __future__ import annotations

import importlib
import sys
import threading
from dataclasses import dataclass
from typing import Any

from zenml_bridge.errors import BridgeError, did_you_mean

FLAVORS = "zenml_bridge.flavors"
SETTINGS = "zenml_bridge.settings"
MATERIALIZERS = "zenml_bridge.materializers"
COMPILERS = "zenml_bridge.compilers"
INTEGRATIONS = "zenml_bridge.integrations"
#: The group trackers used before ``zenml_bridge.flavors``; its entries are read as flavors.
LEGACY_TRACKERS = "zenml_bridge.experiment_trackers"

_M = "zenml_bridge.materializers"

#: group -> name -> "module:attr". Entry points never replace a built-in name.
BUILTINS: dict[str, dict[str, str]] = {
    FLAVORS: {},
    SETTINGS: {},
    MATERIALIZERS: {
        "builtins.json": f"{_M}.builtin:JSONMaterializer",
        "builtins.str": f"{_M}.builtin:StrMaterializer",
        "zenml_bridge.html": f"{_M}.builtin:HTMLMaterializer",
        "builtins.bytes": f"{_M}.builtin:BytesMaterializer",
        "pandas.dataframe": f"{_M}.pandas_frames:DataFrameMaterializer",
        "pandas.series": f"{_M}.pandas_frames:SeriesMaterializer",
        "numpy.ndarray": f"{_M}.numpy_arrays:NumpyMaterializer",
        "sklearn.joblib": f"{_M}.sklearn_models:SklearnMaterializer",
        "validation.report": "zenml_bridge.validation:ValidationReportMaterializer",
        "builtins.pickle": f"{_M}.pickles:PickleMaterializer",
    },
    COMPILERS: {
        "ir": "zenml_bridge.compilers.ir:IRCompiler",
        "airflow": "zenml_bridge.compilers.airflow:AirflowCompiler",
        "kubeflow": "zenml_bridge.compilers.kubeflow:KubeflowCompiler",
    },
    INTEGRATIONS: {},
}

#: Old group -> (group it feeds, prefix given to its entry names there).
ALIASES: dict[str, tuple[str, str]] = {LEGACY_TRACKERS: (FLAVORS, "experiment_tracker.")}

#: How messages name the things of a group.
WHAT = {
    FLAVORS: "stack component flavor",
    SETTINGS: "settings block",
    MATERIALIZERS: "materializer",
    COMPILERS: "compiler target",
    INTEGRATIONS: "integration",
}


@dataclass(frozen=True, slots=True)
class Plugin:
    """One entry of the table: where it points and where it came from."""

    group: str
    name: str
    target: str  # "module:attr" (or "module" for integrations)
    distribution: str | None = None  # None for built-ins
    version: str | None = None
    #: The entry point as found (None for built-ins); ``group``/``name`` above are the
    #: table's (an old-group entry is listed under its new group and name).
    entry_point: Any = None

    @property
    def origin(self) -> str:
        return "built-in" if self.distribution is None else f"entry point ({self.distribution})"

    def load(self) -> Any:
        """Import the module and return the attribute (the module when there is none)."""
        if self.entry_point is not None:
            return self.entry_point.load()
        module, _, attr = self.target.partition(":")
        loaded: Any = importlib.import_module(module)
        for part in attr.split(".") if attr else ():
            loaded = getattr(loaded, part)
        return loaded


_lock = threading.RLock()
_scans: dict[tuple[str, ...], dict[str, Plugin]] = {}


def installed(group: str) -> dict[str, Plugin]:
    """Entry points of ``group`` (and of the old groups that feed it), by table name.

    The first distribution on ``sys.path`` wins a name it shares with another one (the same
    distribution seen twice). Built-in names are included when a plugin takes one: callers
    that must refuse that (materializers) can see it.
    """
    return dict(_scan(group))


def plugins(group: str) -> dict[str, Plugin]:
    """Built-ins and entry points of ``group``; a built-in name always means the built-in."""
    found = {name: Plugin(group, name, target) for name, target in BUILTINS.get(group, {}).items()}
    for name, plugin in installed(group).items():
        found.setdefault(name, plugin)
    return found


def plugin_names(group: str) -> list[str]:
    """The sorted names of ``group``: built-ins and installed entry points."""
    return sorted(plugins(group))


def find_plugin(group: str, name: str) -> Plugin | None:
    """The entry named ``name``, or None. A built-in name is answered without a scan."""
    target = BUILTINS.get(group, {}).get(name)
    if target is not None:
        return Plugin(group, name, target)
    return installed(group).get(name)


def load_plugin(group: str, name: str) -> Any:
    """Load the object ``name`` of ``group`` points at.

    Raises:
        BridgeError: the name is unknown (with "did you mean" and the known names), or the
            plugin fails to import (naming the entry point and its distribution).

    Example:
        >>> load_plugin(COMPILERS, "ir").__name__
        'IRCompiler'
    """
    plugin = find_plugin(group, name)
    what = WHAT.get(group, "plugin")
    if plugin is None:
        known = plugin_names(group)
        raise BridgeError(
            f"There is no {what} '{name}' (entry-point group '{group}')."
            + did_you_mean(name, known)
            + f" Known: {', '.join(known) or 'none installed'}. Install the package that "
            "provides it, or fix the name."
        )
    try:
        return plugin.load()
    except Exception as exc:  # a broken plugin must say which one it is
        raise BridgeError(
            f"The {what} '{name}' ({plugin.target}, {plugin.origin}) fails to import: "
            f"{type(exc).__name__}: {exc}. Fix or reinstall the package that provides it."
        ) from exc


def refresh() -> None:
    """Forget the scans (after installing a distribution in this process)."""
    with _lock:
        _scans.clear()


def _scan(group: str) -> dict[str, Plugin]:
    # Not importlib.metadata: it imports email, zipfile and more (see entry_points.py).
    from zenml_bridge.entry_points import entry_points

    key = (group, *sys.path)
    with _lock:
        cached = _scans.get(key)
        if cached is not None:
            return cached
        entries: dict[str, Plugin] = {}
        # The group itself first: its entries win over an old group's of the same name.
        sources = [(group, "")] + [(old, p) for old, (new, p) in ALIASES.items() if new == group]
        for source, prefix in sources:
            for ep in entry_points(source):
                dist = getattr(ep, "dist", None)
                name = prefix + ep.name
                # The same distribution may be seen twice on sys.path: the first one wins.
                entries.setdefault(
                    name,
                    Plugin(
                        group,
                        name,
                        ep.value,
                        getattr(dist, "name", None) or "?",
                        getattr(dist, "version", None),
                        ep,
                    ),
                )
        _scans[key] = entries
        return entries
