"""Content hashes of artifact folders, computed while the files are written.

An artifact's content hash is sha256 over one line per file, in sorted relative-path order:
``path NUL size NUL sha256-of-the-file's-bytes LF`` (scheme 2). Each file's own sha256 is
computed as its bytes go to disk (:class:`HashingLocalFS`), so hashing a freshly written folder
reads nothing back: a 80 MB DataFrame is hashed in the same pass that writes it.

Scheme 1 (``path NUL size NUL bytes`` for each file, one stream) needs each file's size before
its bytes, so it cannot be computed while writing; hashes recorded with it are still verified
(a folder whose scheme-2 hash differs from the recorded one is also checked under scheme 1,
see :func:`matches`), so artifacts written by earlier versions load as before. Only the cache
keys change (they hold input hashes): the first run after the upgrade re-runs a step whose
inputs were hashed under scheme 1.

Example:
    >>> folder_digest([("a.txt", 3, file_digest(b"abc"))])[:12]
    'a753b67c2b5c'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_CHUNK = 1 << 20

#: (size, mtime_ns, ctime_ns, inode) of a file: what shows that it changed since it was hashed.
Stat = tuple[int, int, int, int]


def file_digest(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def folder_digest(files: Iterable[tuple[str, int, str]]) -> str:
    """The scheme-2 content hash of ``(relative path, size, file sha256)`` triples."""
    text = "".join(f"{rel}\0{size}\0{sha}\n" for rel, size, sha in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


def bytes_digest(files: Mapping[str, bytes]) -> str:
    """Scheme-2 hash of in-memory files (relative path -> bytes)."""
    return folder_digest((rel, len(data), file_digest(data)) for rel, data in files.items())


def bytes_digest_v1(files: Mapping[str, bytes]) -> str:
    """Scheme-1 hash of in-memory files (what earlier versions recorded)."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(f"{rel}\0{len(files[rel])}\0".encode())
        digest.update(files[rel])
    return digest.hexdigest()


def matches(expected: str, scheme2: str, scheme1: Callable[[], str]) -> str:
    """The actual hash to compare with ``expected``: ``scheme2``, or ``expected`` itself when
    the content hashes to it under scheme 1 (an artifact recorded by an earlier version).
    ``scheme1`` is computed only when scheme 2 does not match."""
    if scheme2 == expected:
        return scheme2
    return expected if scheme1() == expected else scheme2


def stat_of(path: str) -> Stat:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def hash_file(path: str) -> tuple[int, str]:
    """``(size, sha256)`` of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= _CHUNK:
            digest.update(handle.read())
        else:
            buffer = bytearray(_CHUNK)
            view = memoryview(buffer)
            while n := handle.readinto(buffer):
                digest.update(view[:n])
    return size, digest.hexdigest()


#: Writes of at least this many bytes are hashed in a helper thread while they are written.
_OVERLAP = 1 << 20
_HASHER: tuple[int, Any] | None = None


def _hasher() -> Any:
    """The helper thread's executor of this process (a forked child makes its own)."""
    global _HASHER
    if _HASHER is None or _HASHER[0] != os.getpid():
        from concurrent.futures import ThreadPoolExecutor

        _HASHER = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="zenml-bridge-hash"))
    return _HASHER[1]


class HashingWriter:
    """A binary file opened for writing that hashes every byte as it is written.

    ``on_close(path, size, sha256, trusted)`` is called once, after the file is closed.
    Only a plain sequential write is trusted: a seek, truncate or ``fileno()`` (a writer that
    could bypass :meth:`write`) drops the record, and the file is hashed by reading it back.
    """

    def __init__(self, path: str, on_close: Callable[[str, int, str, bool], None]) -> None:
        self.name = path
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._digest: Any = hashlib.sha256()
        self._size = 0
        self._on_close = on_close
        self._trusted = True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        if len(view) >= _OVERLAP:
            # Hash in a helper thread while this one writes (both release the GIL); both end
            # before write() returns, so the caller may reuse its buffer afterwards.
            hashed = _hasher().submit(self._digest.update, view)
            try:
                written = self._file.write(view)
            finally:
                hashed.result()
        else:
            self._digest.update(view)
            written = self._file.write(view)
        self._size += len(view)
        return written if written is not None else len(view)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        self._trusted = False
        return self._file.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) in ((self._size, 0), (0, 1), (0, 2)):
            return self._size
        self._trusted = False
        return self._file.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        self._trusted = False
        return self._file.truncate(size)

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.close()
        self._on_close(self.name, self._size, self._digest.hexdigest(), self._trusted)

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
