"""Pickle, for any other object, only when the step opts in with ``@step(allow_pickle=True)``.

Loading a pickle runs code named in the file, so a pickle in a shared artifact store is code
that every reader executes; that is why it is opt-in. Objects the standard library cannot
pickle by reference (lambdas, classes defined in ``__main__`` or inside functions) are written
with cloudpickle when it is installed, which stores them by value; reading those needs
cloudpickle too.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any, ClassVar

from zenml_bridge.errors import BridgeError
from zenml_bridge.materializers.base import Materializer, join, prepare

PLAIN = "value.pkl"
CLOUD = "value.cloudpickle.pkl"
# A fixed protocol: a new Python with a newer default would otherwise change the bytes (and hash).
PROTOCOL = 5


def _needs_by_value(value: Any) -> bool:
    cls = value if isinstance(value, type) else type(value)
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return True
    name = getattr(value, "__qualname__", "")
    return callable(value) and ("<lambda>" in name or "<locals>" in name)


class PickleMaterializer(Materializer):
    """Any picklable object as ``value.pkl`` (or ``value.cloudpickle.pkl``); opt-in only."""

    name: ClassVar[str] = "builtins.pickle"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = ("builtins.object",)
    pickle_based: ClassVar[bool] = True
    requires_opt_in: ClassVar[bool] = True

    def save(self, value: Any, folder: str, fs: Any) -> None:
        filename, data, problem = PLAIN, None, "it is stored by value (lambda or local class)"
        if not _needs_by_value(value):
            try:
                data = pickle.dumps(value, protocol=PROTOCOL)
            except (pickle.PicklingError, AttributeError, TypeError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
        if data is None:
            filename, data = CLOUD, _cloudpickle_dumps(value, problem)
        prepare(folder, fs)
        with fs.open(join(folder, filename), "wb") as f:
            f.write(data)

    def load(self, folder: str, fs: Any) -> Any:
        cloud = fs.exists(join(folder, CLOUD))
        if cloud:
            try:
                import cloudpickle  # noqa: F401 - the pickle refers to its functions
            except ImportError as exc:
                raise BridgeError(
                    f"The artifact in {folder} was pickled with cloudpickle (a lambda or a "
                    "class defined in __main__). Install it to load it: pip install cloudpickle."
                ) from exc
        with fs.open(join(folder, CLOUD if cloud else PLAIN), "rb") as f:
            return pickle.loads(f.read())  # the step opted in: see the module docstring

    def load_files(self, files: Mapping[str, bytes]) -> Any:
        """Unpickle from bytes the artifact store has just verified (never re-read)."""
        if CLOUD in files:
            try:
                import cloudpickle  # noqa: F401 - the pickle refers to its functions
            except ImportError as exc:
                raise BridgeError(
                    "The artifact was pickled with cloudpickle (a lambda or a class defined in "
                    "__main__). Install it to load it: pip install cloudpickle."
                ) from exc
            return pickle.loads(files[CLOUD])
        if PLAIN not in files:
            raise BridgeError(
                f"The pickle artifact has no {PLAIN} (files: {', '.join(sorted(files))})."
            )
        return pickle.loads(files[PLAIN])  # the step opted in: see the module docstring


def _type_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _cloudpickle_dumps(value: Any, problem: str) -> bytes:
    try:
        import cloudpickle
    except ImportError as exc:
        raise BridgeError(
            f"Cannot pickle a {_type_name(value)} with the standard library ({problem}). "
            "Install cloudpickle (pip install cloudpickle), which stores lambdas and classes "
            "defined in __main__ or inside functions by value, or register a materializer for "
            "this type (docs/materializers.md)."
        ) from exc
    try:
        data: bytes = cloudpickle.dumps(value, protocol=PROTOCOL)
    except Exception as exc:
        raise BridgeError(
            f"Cannot pickle a {_type_name(value)}: {type(exc).__name__}: {exc}. Return a value "
            "that pickles, or register a materializer for this type (docs/materializers.md)."
        ) from exc
    return data
