"""The :class:`Materializer` base class: how one kind of value becomes files and back.

A materializer writes a value as files into a folder it is given and reads them back. The
artifact store gives it the folder (a temporary one, renamed into place and hashed afterwards)
and an fsspec filesystem, so the same materializer works on a local folder, S3 or GCS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

#: Media types of visualization files, by file extension (the only extensions accepted).
VISUALIZATION_TYPES: Mapping[str, str] = {
    ".html": "text/html",
    ".md": "text/markdown",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".yaml": "application/yaml",
}


class Materializer:
    """Base class of materializers.

    Subclasses set :attr:`name` (stable, recorded in the metadata store), :attr:`version`
    (part of every cache key: bump it when the file format changes) and :attr:`handles`
    (dotted names of the classes they store, matched against ``type(value).__mro__`` so that
    registering one imports nothing heavy), and implement :meth:`save` and :meth:`load`.

    Example:
        >>> import fractions
        >>> class FractionMaterializer(Materializer):
        ...     name = "example.fraction"
        ...     handles = ("fractions.Fraction",)
        ...     def save(self, value, folder, fs):
        ...         with fs.open(join(folder, "fraction.txt"), "w") as f:
        ...             f.write(str(value))
        ...     def load(self, folder, fs):
        ...         with fs.open(join(folder, "fraction.txt"), "r") as f:
        ...             return fractions.Fraction(f.read())
    """

    #: Stable identifier recorded with every artifact, e.g. ``"builtins.json"``.
    name: ClassVar[str] = ""
    #: Format version; it goes into the cache key, so bumping it re-runs steps.
    version: ClassVar[str] = "1"
    #: Dotted class names this materializer stores, e.g. ``"pandas.core.frame.DataFrame"``.
    handles: ClassVar[tuple[str, ...]] = ()
    #: True when loading runs code chosen by whoever wrote the files (pickle and friends).
    pickle_based: ClassVar[bool] = False
    #: True when a step must opt in with ``@step(allow_pickle=True)`` before it is chosen.
    requires_opt_in: ClassVar[bool] = False

    def reject_reason(self, value: Any) -> str | None:
        """Why this value cannot be stored exactly, or None when it can.

        The registry calls it for every candidate, so keep it cheap; a reason makes the
        registry try the next candidate (and it is quoted when no candidate is left).
        """
        return None

    def save(self, value: Any, folder: str, fs: Any) -> None:
        """Write ``value`` as files into ``folder`` through the fsspec filesystem ``fs``."""
        raise NotImplementedError

    def load(self, folder: str, fs: Any) -> Any:
        """Read back the value that :meth:`save` wrote into ``folder``.

        A ``pickle_based`` materializer should also define ``load_files(files)``, taking the
        folder's files as ``{relative path: bytes}``: the artifact store then reads the files
        once, verifies their hash and hands over those very bytes, so no file can be swapped
        between the check and the unpickling.
        """
        raise NotImplementedError

    def visualizations(self, value: Any) -> Mapping[str, str | bytes]:
        """Reports a person can look at, kept beside the artifact: file name -> content.

        The runtime writes them under ``<artifact folder>/visualizations/`` before the artifact
        is hashed, so they are immutable, verified and cached with it. Names are plain file
        names ending in one of :data:`VISUALIZATION_TYPES` (``.html .md .png .svg .json
        .yaml``); ``str`` content is written as UTF-8. The default is none.
        """
        return {}

    @classmethod
    def ref(cls) -> str:
        """``name@version``: what identifies the format in cache keys and messages."""
        return f"{cls.name}@{cls.version}"

    def __repr__(self) -> str:
        return f"<materializer {self.ref()}>"


def join(folder: str, filename: str) -> str:
    """``folder/filename`` for fsspec paths (always ``/``, also on Windows and object stores)."""
    return f"{folder.rstrip('/')}/{filename}"


def type_name(cls: type) -> str:
    """The dotted name materializers match: ``pandas.core.frame.DataFrame``, ``builtins.int``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def prepare(folder: str, fs: Any) -> None:
    """Create ``folder`` if the filesystem has directories (a no-op on object stores)."""
    fs.makedirs(folder, exist_ok=True)
