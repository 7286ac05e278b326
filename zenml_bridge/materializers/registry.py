"""Finding the materializer of a value (by type, most specific first) or of a stored artifact.

Three sources, all lazy: the built-ins below (``"module:Class"`` strings, imported on first
use), third-party classes in the ``zenml_bridge.materializers`` entry-point group (entry name =
materializer name; never a built-in's name), and classes passed to :func:`register` in this
process. The installed distributions are scanned for entry points once per process, and only
when needed: to select a materializer for a value, or to find a name that is neither registered
nor built-in (a cache hit or a load of a built-in's artifact never scans). Selection walks
``type(value).__mro__``; for each class the candidates are tried in the order register() (last
registered first), entry points, built-ins, and the first one that accepts the value wins.

A handle names a class by a dotted path. It matches a class whose reported name
(``module.QualName``) is that path, or a class found at that path in a module that is already
imported. The second rule is what makes ``pandas.DataFrame`` and ``pandas.core.frame.DataFrame``
name the same class on pandas 2 (which reports the latter) and pandas 3 (which reports the
former): libraries move classes and rewrite ``__module__``, the objects stay the same.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from zenml_bridge import plugins
from zenml_bridge.errors import BridgeError, did_you_mean
from zenml_bridge.materializers.base import Materializer, type_name

GROUP = plugins.MATERIALIZERS


@dataclass(frozen=True, slots=True)
class _Entry:
    """A materializer known by name; its class is imported only when it is needed."""

    name: str
    version: str
    handles: tuple[str, ...]
    target: str  # "module:Class"
    origin: str  # "built-in", "entry point (dist)", "register()"


#: What the built-ins of the plugin table handle, in selection order, all at version "1".
#: tests/materializers check that these agree with the classes, so that matching a type or
#: reading a version for a cache check imports nothing heavy (the pandas module imports pandas).
_BUILTIN_HANDLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "builtins.json",
        (
            "builtins.NoneType",
            "builtins.bool",
            "builtins.int",
            "builtins.float",
            "builtins.list",
            "builtins.dict",
        ),
    ),
    ("builtins.str", ("builtins.str",)),
    # zenml_bridge.HTML: a page kept as the artifact and as its own visualization.
    ("zenml_bridge.html", ("zenml_bridge.gates.HTML",)),
    ("builtins.bytes", ("builtins.bytes",)),
    # Public names: pandas 3 reports these, pandas 2 reports pandas.core.frame.DataFrame
    # (same object, matched through the imported `pandas` module, see _resolve).
    ("pandas.dataframe", ("pandas.DataFrame",)),
    ("pandas.series", ("pandas.Series",)),
    ("numpy.ndarray", ("numpy.ndarray", "numpy.generic")),
    ("sklearn.joblib", ("sklearn.base.BaseEstimator",)),
    ("validation.report", ("zenml_bridge.validation.ValidationReport",)),
    ("builtins.pickle", ("builtins.object",)),
)
BUILTINS: tuple[_Entry, ...] = tuple(
    _Entry(name, "1", handles, plugins.BUILTINS[GROUP][name], "built-in")
    for name, handles in _BUILTIN_HANDLES
)

_BUILTIN_NAMES: dict[str, _Entry] = {entry.name: entry for entry in BUILTINS}

_lock = threading.RLock()
_registered: list[_Entry] = []  # newest last
_classes: dict[str, type[Materializer]] = {}  # name -> class, for register() and loaded ones
_entry_points: dict[str, Any] | None = None  # name -> importlib.metadata.EntryPoint
_plugin_entries: list[_Entry] | None = None
_selection_cache: dict[type, tuple[_Entry, ...]] = {}

PICKLE_WHY = (
    "Pickle is off by default because loading a pickle from a shared artifact store executes "
    "code: anyone who can write the store could run code in every step that reads it."
)


def register(materializer_cls: type[Materializer]) -> type[Materializer]:
    """Register a materializer class in this process; it wins over entry points and built-ins.

    Usable as a class decorator. Registering the same name again replaces the earlier class.
    Steps that run in other processes (Airflow, Kubeflow) need the registration to happen there
    too: call it at import time of the module that defines your steps, or use an entry point.

    Example:
        >>> from zenml_bridge.materializers import Materializer, register
        >>> @register
        ... class FractionMaterializer(Materializer):
        ...     name = "example.fraction"
        ...     handles = ("fractions.Fraction",)
    """
    _check_class(materializer_cls, origin="register()")
    entry = _Entry(
        materializer_cls.name,
        str(materializer_cls.version),
        tuple(materializer_cls.handles),
        f"{materializer_cls.__module__}:{materializer_cls.__qualname__}",
        "register()",
    )
    with _lock:
        _registered[:] = [e for e in _registered if e.name != entry.name]
        _registered.append(entry)
        _classes[entry.name] = materializer_cls
        _invalidate()
    return materializer_cls


def unregister(name: str) -> None:
    """Forget a class registered with :func:`register` (tests use it to clean up)."""
    with _lock:
        _registered[:] = [e for e in _registered if e.name != name]
        _classes.pop(name, None)
        _invalidate()


def select(
    value: Any, *, allow_pickle: bool = False, explicit: str | None = None, what: str = "a value"
) -> Materializer:
    """The materializer that stores ``value``: the most specific class of its MRO wins.

    Args:
        value: the value to store.
        allow_pickle: the step opted in with ``@step(allow_pickle=True)``; pickle-based
            materializers that require the opt-in are skipped otherwise.
        explicit: a materializer name chosen by the user instead of the type-based choice.
        what: how messages name the value, e.g. ``"output 'model' of step 'train'"``.

    Raises:
        BridgeError: nothing handles the value (the message names the type, how to register a
            materializer and the pickle opt-in), or ``explicit`` is unknown or unfit.

    Example:
        >>> select([1, 2, 3]).name
        'builtins.json'
    """
    cls = type(value)
    if explicit is not None:
        return _explicit(value, explicit, allow_pickle=allow_pickle, what=what)
    reasons: list[str] = []
    for entry in _candidates(cls):
        materializer = _instance(entry)
        if materializer.requires_opt_in and not allow_pickle:
            continue
        reason = materializer.reject_reason(value)
        if reason is None:
            return materializer
        reasons.append(f"{entry.name} declined: {reason}")
    raise _nothing_handles(cls, what, reasons, allow_pickle=allow_pickle)


def get(name: str) -> Materializer:
    """The materializer recorded as ``name`` (for loading a stored artifact).

    Raises:
        BridgeError: no built-in, entry point or registered class has that name.

    Example:
        >>> get("builtins.json").version
        '1'
    """
    return _instance(_entry_named(name))


def available() -> list[tuple[str, str, tuple[str, ...], str]]:
    """``(name, version, handles, origin)`` of every known materializer, in selection order.

    Imports nothing but entry-point plugins (which are loaded to learn what they handle).
    """
    return [(e.name, e.version, e.handles, e.origin) for e in _all_entries()]


def version_of(name: str) -> str:
    """The current ``version`` of the materializer named ``name``, for cache keys and hits.

    Built-ins answer without importing their module, so checking a cache hit of a DataFrame
    output does not import pandas.

    Example:
        >>> version_of("pandas.dataframe")
        '1'
    """
    return _entry_named(name).version


# -- internals ---------------------------------------------------------------------------------


def _invalidate() -> None:
    _selection_cache.clear()


def _all_entries() -> list[_Entry]:
    with _lock:
        return [*reversed(_registered), *_plugins(), *BUILTINS]


def _plugins() -> list[_Entry]:
    """Entry points of the group, read once per process (it scans installed distributions)."""
    global _entry_points, _plugin_entries
    with _lock:
        if _plugin_entries is None:
            found = {name: p.entry_point for name, p in plugins.installed(GROUP).items()}
            _entry_points = found
            entries = []
            for ep_name in sorted(found):
                if ep_name in _BUILTIN_NAMES:
                    raise BridgeError(
                        f"The materializer entry point '{ep_name} = {found[ep_name].value}' "
                        f"(group '{GROUP}') takes the name of a built-in materializer. Give "
                        "it a name of its own (e.g. 'mylib.frame'): built-in names always "
                        "mean the built-in, so stored artifacts load the same everywhere."
                    )
                cls = _load_entry_point(found[ep_name])
                dist = getattr(getattr(found[ep_name], "dist", None), "name", "?")
                entries.append(
                    _Entry(
                        cls.name,
                        str(cls.version),
                        tuple(cls.handles),
                        found[ep_name].value,
                        f"entry point ({dist})",
                    )
                )
            _plugin_entries = entries
        return _plugin_entries


def _load_entry_point(ep: Any) -> type[Materializer]:
    try:
        cls = ep.load()
    except Exception as exc:  # a broken plugin must say which one it is
        raise BridgeError(
            f"The materializer entry point '{ep.name} = {ep.value}' (group '{GROUP}') fails "
            f"to import: {type(exc).__name__}: {exc}. Fix or uninstall the package that "
            "provides it."
        ) from exc
    _check_class(cls, origin=f"entry point '{ep.name} = {ep.value}'")
    if cls.name != ep.name:
        raise BridgeError(
            f"The materializer entry point '{ep.name} = {ep.value}' (group '{GROUP}') points "
            f"at a class named '{cls.name}'. Name the entry point exactly like the class's "
            "`name` so stored artifacts find it again."
        )
    checked: type[Materializer] = cls
    with _lock:
        _classes[checked.name] = checked
    return checked


def _check_class(cls: Any, *, origin: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Materializer)):
        raise BridgeError(
            f"The materializer from {origin} is {cls!r}, not a subclass of "
            "zenml_bridge.materializers.Materializer. Subclass it and set name, version, handles."
        )
    if not cls.name or not cls.handles or not all(isinstance(h, str) for h in cls.handles):
        raise BridgeError(
            f"The materializer {type_name(cls)} from {origin} must set `name` (a stable id "
            "like 'mylib.frame') and `handles` (a tuple of dotted class names like "
            "'mylib.frame.Frame')."
        )


def _resolve(path: str) -> object | None:
    """The object at dotted ``path`` in a module that is already imported, else None.

    Imports nothing and reads only ``__dict__``s, so module ``__getattr__`` hooks (lazy
    submodules, deprecation warnings) never run. A class's own module and its parent packages
    are always imported, so the paths that matter (defining module, public alias) resolve.
    """
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        obj: object | None = sys.modules.get(".".join(parts[:cut]))
        if obj is None:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, "__dict__", {}).get(attr)
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


def _handles_class(handles: Iterable[str], cls: type) -> bool:
    """True when one of ``handles`` names ``cls`` (its reported name, or a path to it)."""
    name = type_name(cls)
    return any(h == name or _resolve(h) is cls for h in handles)


def _candidates(cls: type) -> tuple[_Entry, ...]:
    cached = _selection_cache.get(cls)
    if cached is not None:
        return cached
    entries = _all_entries()
    resolved = {h: _resolve(h) for e in entries for h in e.handles}
    found: list[_Entry] = []
    for base in cls.__mro__:
        name = type_name(base)
        for entry in entries:  # register() (newest first), entry points, built-ins
            if entry not in found and any(h == name or resolved[h] is base for h in entry.handles):
                found.append(entry)
    result = tuple(found)
    _selection_cache[cls] = result
    return result


def _entry_named(name: str) -> _Entry:
    # register() wins; a built-in name needs no entry-point scan (no plugin may take one, see
    # _plugins), so a cache hit or a load of a built-in's artifact never scans distributions.
    with _lock:
        for entry in reversed(_registered):
            if entry.name == name:
                return entry
    builtin = _BUILTIN_NAMES.get(name)
    if builtin is not None:
        return builtin
    entries = _all_entries()
    for entry in entries:
        if entry.name == name:
            return entry
    raise BridgeError(
        f"No materializer is named '{name}'.{did_you_mean(name, [e.name for e in entries])} "
        "Install the package that provides it (entry-point group "
        f"'{GROUP}') or register() it in this process before loading the artifact."
    )


def _load_class(entry: _Entry) -> type[Materializer]:
    cls = _classes.get(entry.name)
    if cls is None:
        module, _, attr = entry.target.partition(":")
        loaded: type[Materializer] = getattr(importlib.import_module(module), attr)
        cls = loaded
        with _lock:
            _classes[entry.name] = cls
    return cls


_instances: dict[str, Materializer] = {}


def _instance(entry: _Entry) -> Materializer:
    cls = _load_class(entry)
    materializer = _instances.get(entry.name)
    if materializer is None or type(materializer) is not cls:
        materializer = cls()
        _instances[entry.name] = materializer
    return materializer


def _explicit(value: Any, name: str, *, allow_pickle: bool, what: str) -> Materializer:
    entry = _entry_named(name)
    materializer = _instance(entry)
    cls = type(value)
    if materializer.requires_opt_in and not allow_pickle:
        raise BridgeError(
            f"The materializer '{name}' chosen for {what} is pickle-based. Add "
            f"@step(allow_pickle=True) to the step to allow it. {PICKLE_WHY}"
        )
    if not any(_handles_class(entry.handles, base) for base in cls.__mro__):
        raise BridgeError(
            f"The materializer '{name}' chosen for {what} handles {', '.join(entry.handles)}, "
            f"but the value is a {type_name(cls)}. Choose a materializer for that type or "
            "remove the explicit choice."
        )
    reason = materializer.reject_reason(value)
    if reason is not None:
        raise BridgeError(f"The materializer '{name}' chosen for {what} cannot store it: {reason}.")
    return materializer


def _nothing_handles(
    cls: type, what: str, reasons: Iterable[str], *, allow_pickle: bool
) -> BridgeError:
    name = type_name(cls)
    lines = [f"No materializer can store {what} (type {name})."]
    lines += [f"  ({reason})" for reason in reasons]
    lines.append(
        "Register one for it: subclass zenml_bridge.materializers.Materializer with "
        f"handles = ('{name}',) and either call zenml_bridge.materializers.register(YourClass) "
        f"in the module that defines the step, or publish it in the entry-point group '{GROUP}' "
        "(see docs/materializers.md)."
    )
    if not allow_pickle:
        lines.append(
            "Or let the step store it with pickle: @step(allow_pickle=True). " + PICKLE_WHY
        )
    return BridgeError("\n".join(lines))
