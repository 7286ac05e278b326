"""The local cache of remote artifacts, keyed by content hash.

An artifact on a remote root (``s3://``, ``gs://``, any fsspec URL) is staged here while it is
written (hashed as its files are written, then uploaded once) and downloaded here once when it
is read; each later read in any process of this machine is served from the local copy, with no
request to the remote store. Entries are folders named by the artifact's content sha256:

``<cache>/<sha256>/``: the artifact's files, as they are on the remote store;
``<cache>/.tmp-<host>-<pid>-<random>/``: a write being staged or a download in progress (renamed
to its sha256 name when complete, so a reader never sees half an entry; a temporary folder of a
process that is gone is removed by the next write or download).

Where: ``ZENML_BRIDGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/zenml-bridge/artifacts`` (by default
``~/.cache/zenml-bridge/artifacts``; when that cannot be created, e.g. a read-only home in a
container, ``<system temp folder>/zenml-bridge-artifacts-<uid>``). Size bound:
``ZENML_BRIDGE_CACHE_MAX_BYTES`` (default 10 GiB, ``0`` keeps nothing after a read); after an
entry is added, the least recently used entries are removed until the total fits (an entry is
"used" when it is read or written; the newest entry is kept even when it alone is bigger). Safe
for concurrent processes: entries and removals are renames (a second process adding the same
entry finds it there and discards its copy); a process whose entry is removed while it reads it
downloads it again.

Integrity: an entry is hashed in full (locally) before its first use in a process and compared
with the content hash the metadata store recorded; a damaged entry is removed and downloaded
again. Within a process, the stat check of :mod:`zenml_bridge.stores.artifacts` applies.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from zenml_bridge.errors import BridgeError

ENV_CACHE_DIR = "ZENML_BRIDGE_CACHE_DIR"
ENV_CACHE_MAX = "ZENML_BRIDGE_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 10 * 1024**3
_TMP = ".tmp-"


_FALLBACK: str | None = None


def cache_dir() -> str:
    chosen = os.environ.get(ENV_CACHE_DIR)
    if chosen:
        return os.path.abspath(os.path.expanduser(chosen))
    if _FALLBACK is not None:
        return _FALLBACK
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.abspath(os.path.join(base, "zenml-bridge", "artifacts"))


def _use_fallback() -> bool:
    """When the default folder cannot be created (a read-only home in a container), use one
    in the system's temporary folder for the rest of the process."""
    global _FALLBACK
    if os.environ.get(ENV_CACHE_DIR) or _FALLBACK is not None:
        return False
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else 0
    _FALLBACK = os.path.join(tempfile.gettempdir(), f"zenml-bridge-artifacts-{uid}")
    return True


def max_bytes() -> int:
    raw = (os.environ.get(ENV_CACHE_MAX) or "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
        if value < 0:
            raise ValueError
    except ValueError:
        raise BridgeError(
            f"{ENV_CACHE_MAX}={raw!r} is not a number of bytes: set it to a whole number >= 0 "
            f"(e.g. {DEFAULT_MAX_BYTES} for 10 GiB), or unset it for that default."
        ) from None
    return value


def new_temp() -> str:
    """A new temporary folder in the cache (for staging a write or a download)."""
    from zenml_bridge.stores.artifacts import _writer_tag

    root = cache_dir()
    path = os.path.join(root, _TMP + _writer_tag())
    try:
        os.makedirs(path)
    except OSError as exc:
        if _use_fallback():
            return new_temp()
        raise BridgeError(
            f"Cannot create the local artifact cache folder {root} ({exc.strerror}). Set "
            f"{ENV_CACHE_DIR} to a writable folder."
        ) from None
    return path


def entry(sha256: str) -> str:
    return os.path.join(cache_dir(), sha256)


def adopt(temp: str, sha256: str) -> str:
    """Make the complete folder ``temp`` the entry of ``sha256`` (or discard it when another
    process added that entry first); returns the entry's path."""
    final = entry(sha256)
    try:
        os.rename(temp, final)
    except OSError:  # there already (same content: its name is its hash)
        shutil.rmtree(temp, ignore_errors=True)
    touch(final)
    return final


def touch(path: str) -> None:
    """Mark an entry as just used (least recently used entries are removed first)."""
    try:
        os.utime(path)
    except OSError:
        pass


def discard(path: str) -> None:
    """Remove an entry (renamed away first, so no reader sees it half-removed)."""
    from zenml_bridge.stores.artifacts import _writer_tag

    gone = os.path.join(os.path.dirname(path), _TMP + _writer_tag())
    try:
        os.rename(path, gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def evict(keep: str | None = None) -> None:
    """Remove least recently used entries until the cache fits its bound, and temporary
    folders of processes that are gone. ``keep``: an entry never removed now (just added)."""
    from zenml_bridge.stores.artifacts import _stale_temp

    root = cache_dir()
    limit = max_bytes()
    entries: list[tuple[int, str, int]] = []
    total = 0
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        path = os.path.join(root, name)
        if name.startswith(_TMP):
            if _stale_temp(path, _TMP):
                shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            used = os.stat(path).st_mtime_ns
            size = _folder_size(path)
        except OSError:
            continue
        entries.append((used, path, size))
        total += size
    for _used, path, size in sorted(entries):
        if total <= limit:
            break
        if path == keep:
            continue
        discard(path)
        total -= size


def _folder_size(path: str) -> int:
    total = 0
    with os.scandir(path) as found:
        for item in found:
            if item.is_dir(follow_symlinks=False):
                total += _folder_size(item.path)
            else:
                total += item.stat(follow_symlinks=False).st_size
    return total


def download(fs: Any, folder: str, files: list[tuple[str, int]]) -> str:
    """Download the remote ``folder``'s ``files`` (relative path, size) into a new temporary
    folder of the cache, one GET per file; returns that folder."""
    temp = new_temp()
    try:
        for rel, _size in files:
            target = os.path.join(temp, *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fs.get_file(f"{folder}/{rel}", target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return temp
