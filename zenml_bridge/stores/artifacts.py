"""The artifact store: immutable folders under any fsspec URL, with a sha256 content hash.

Layout: ``<root>/<pipeline>/<run_id>/<step>/<output>/``. A materializer writes into a temporary
sibling folder, which is hashed and then renamed into place, so a reader never sees a
half-written artifact (a killed writer leaves at most a ``.<output>.tmp-<host>-<pid>-*`` folder,
removed by a later write of that output once its writer is gone; a live writer's is never
touched). A folder already in place is never replaced: an identical second attempt is
discarded, a different one goes to ``<output>.<sha256[:16]>/`` and the metadata store decides
which record wins. Loading verifies the hash first.

The content hash is sha256 over one line per file in sorted relative-path order,
``path NUL size NUL sha256(bytes)`` (see :mod:`zenml_bridge.stores.hashing`); files a
materializer writes through the filesystem it is given are hashed as they are written, so a
new artifact is never read back to be hashed.

Example:
    >>> store = ArtifactStore("/tmp/zb/artifacts")                              # doctest: +SKIP
    >>> uri, sha, size = store.write("p", "run1", "load", "output", save)       # doctest: +SKIP
    >>> value = store.read(uri, sha, load)                                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from zenml_bridge.errors import BridgeError
from zenml_bridge.stores import hashing

T = TypeVar("T")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]")
_CHUNK = 1 << 20


def path_part(name: str) -> str:
    """A run id or name made safe as one path component (Airflow run ids hold ':' and '+')."""
    cleaned = _UNSAFE.sub("_", name).lstrip(".")
    return cleaned or "_"


def is_local_url(url: str) -> bool:
    """Whether ``url`` is a local path (plain or ``file://``) rather than an fsspec URL.

    The one definition of "local" for artifacts, IR documents and code archives.
    """
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    """The path of a local URL (``file://`` removed)."""
    return url[len("file://") :] if url.startswith("file://") else url


_is_local = is_local_url
_strip_file = local_path


class ArtifactStore:
    """Artifacts under ``root``: a local folder or any fsspec URL (``s3://bucket/prefix``)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.local = _is_local(root)
        self.base = os.path.abspath(os.path.expanduser(_strip_file(root))) if self.local else root
        self._fs: Any = None

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root!r})"

    @property
    def fs(self) -> Any:
        """The fsspec filesystem of the root (imported on first use)."""
        if self._fs is None:
            self._fs = filesystem_for(self.root)
        return self._fs

    def check_writable(self) -> None:
        """Raise a BridgeError naming the root when artifacts cannot be written there."""
        if not self.local:
            return
        problem = None
        try:
            os.makedirs(self.base, exist_ok=True)
            if not os.access(self.base, os.W_OK | os.X_OK):
                problem = "it is not writable"
        except OSError as exc:
            problem = f"it cannot be created: {exc.strerror}"
        if problem:
            raise BridgeError(
                f"The artifact root {self.base} cannot hold artifacts ({problem}). Choose a "
                "writable folder or fsspec URL with ZENML_BRIDGE_ARTIFACT_ROOT or the stack's "
                "artifact_root (`zenml-bridge stack register`)."
            )

    def folder(self, pipeline: str, run_id: str, step: str, output: str) -> str:
        parts = (path_part(pipeline), path_part(run_id), step, output)
        if self.local:
            return os.path.join(self.base, *parts)
        return "/".join((self.base.rstrip("/"), *parts))

    def write(
        self,
        pipeline: str,
        run_id: str,
        step: str,
        output: str,
        save: Callable[[str, Any], None],
    ) -> tuple[str, str, int]:
        """Write one artifact with ``save(folder, fs)``; returns ``(uri, sha256, size)``."""
        final = self.folder(pipeline, run_id, step, output)
        if self.local:
            return self._write_local(final, output, save)
        return self._write_remote(final, output, save)

    def _write_local(
        self, final: str, output: str, save: Callable[[str, Any], None]
    ) -> tuple[str, str, int]:
        parent = os.path.dirname(final)
        prefix = f".{output}.tmp-"
        temp = os.path.join(parent, prefix + _writer_tag())
        fresh = False  # this call created the step folder: nobody's temporary folder is older
        try:
            # Two syscalls for a new step folder; makedirs only for the run's first step.
            try:
                os.mkdir(parent)
                fresh = True
            except FileExistsError:
                pass
            except FileNotFoundError:
                os.makedirs(os.path.dirname(parent), exist_ok=True)
                try:
                    os.mkdir(parent)
                    fresh = True
                except FileExistsError:
                    pass
            os.mkdir(temp)
        except OSError as exc:
            raise BridgeError(
                f"Cannot write the artifact folder {final} ({exc.strerror}). Check that the "
                f"artifact root {self.base} is writable, or choose another with "
                "ZENML_BRIDGE_ARTIFACT_ROOT."
            ) from None
        fs = HashingLocalFS(made=temp)
        try:
            save(temp, fs)
            digest, size, hashed_while_written, stats = _hash_written(temp, fs.written)
            written: frozenset[str] | None = hashed_while_written
            signature: tuple[tuple[str, int, int, int, int], ...] | None = stats
            try:
                os.rename(temp, final)
            except OSError:
                # Another attempt of this step put a folder there first (a retry after a
                # failure, a duplicate task): never replace it, it may be recorded already.
                settled = _settle_local(temp, final, digest)
                if settled == final:  # the other attempt's folder: verified by reading it
                    written = None
                signature = None
                final = settled
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        if not fresh:
            # Temporary folders of writers that are gone (killed mid-write). A step folder this
            # call created held none: only writers that started after it could have put one
            # there, and a live writer's folder is never removed anyway.
            for name in os.listdir(parent):
                if name.startswith(prefix) and _stale_temp(os.path.join(parent, name), prefix):
                    shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        # The files' stats were taken by _hash_written (the rename of their folder changes
        # none of them): no second listing and stat of each file.
        _remember(final, digest, written, signature)
        return final, digest, size

    def _write_remote(
        self, final: str, output: str, save: Callable[[str, Any], None]
    ) -> tuple[str, str, int]:
        """Stage the artifact in the local cache (hashed while written), then upload each file
        once to its final name. An object store has no folder rename, but each object appears
        whole or not at all (a PUT, or a multipart upload's completion), and the artifact is
        recorded only after its last file is uploaded; readers check the recorded hash. A
        folder already there (another attempt) is never replaced: when it has the same file
        names and sizes it is downloaded and compared (a retry with the same result uploads
        nothing), else this content goes to ``<output>.<sha256[:16]>`` (skipped when that
        holds the same names and sizes: its name is this content's hash)."""
        from zenml_bridge.stores import remote_cache

        fs = self.fs
        stage = remote_cache.new_temp()
        local = HashingLocalFS(remote=True)
        try:
            save(stage, local)
            digest, size, written, _ = _hash_written(stage, local.written)
            staged: list[tuple[str, str]] = []
            _list_local(stage, "", staged)
            listing = tuple(sorted((rel, os.path.getsize(full)) for rel, full in staged))
            target = final
            existing = _remote_listing_or_empty(fs, final)
            if existing == listing and _hash_fs(fs, final)[0] == digest:
                staged = []  # an identical attempt is there (a retry): downloaded to compare
            elif existing:
                target = f"{final}.{digest[:16]}"
                if _remote_listing_or_empty(fs, target) == listing:
                    staged = []  # this very content is there already (its name is its hash)
            for rel, full in sorted(staged):
                fs.put_file(full, f"{target}/{rel}")
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        cached = remote_cache.adopt(stage, digest)
        _remember(cached, digest, written)
        remote_cache.evict(keep=cached)
        uri = _unstrip(fs, target)
        _UPLOADED[uri] = listing
        return uri, digest, size

    def read(self, uri: str, sha256: str, load: Callable[[str, Any], T]) -> T:
        """Verify the artifact's content hash, then ``load(folder, fs)`` it.

        A local artifact this process already hashed (wrote or verified) is not hashed again
        while every file keeps its size, mtime, ctime and inode (git's index works the same
        way); any change to a file is hashed and checked.
        """
        materializer = getattr(load, "__self__", None)
        load_files = getattr(materializer, "load_files", None)
        if getattr(materializer, "pickle_based", False) and load_files is not None:
            # Loading runs code: hash and deserialize the very same bytes (no re-open).
            return load_files(self.read_files(uri, sha256))  # type: ignore[no-any-return]
        if not _is_local(uri):
            return self._read_cached(uri, sha256, load)
        if _still_verified(_strip_file(uri), sha256):
            return load(_strip_file(uri), self.fs if self.local else filesystem_for("file://"))
        actual = self._actual_hash(uri, sha256)
        if actual == sha256 and _is_local(uri):
            _remember(_strip_file(uri), actual)
        if actual != sha256:
            raise _corrupted(uri, actual, sha256)
        return load(_strip_file(uri), self.fs if self.local else filesystem_for("file://"))

    def cached_copy(self, uri: str, sha256: str) -> str:
        """The local folder that holds the remote artifact ``uri``, verified against
        ``sha256``: the local cache's entry (downloaded once, one GET per file, when absent;
        see :mod:`zenml_bridge.stores.remote_cache`)."""
        from zenml_bridge.stores import remote_cache

        folder = remote_cache.entry(sha256)
        if os.path.isdir(folder):
            if _still_verified(folder, sha256) or self._verify_entry(folder, sha256):
                remote_cache.touch(folder)
                return folder
            remote_cache.discard(folder)  # damaged: fetched again below
        fs, path = _url_to_fs(uri)
        try:
            listing = _remote_listing(fs, path)
        except (FileNotFoundError, OSError):
            listing = ()
        if not listing:
            raise _missing(uri)
        temp = remote_cache.download(fs, fs._strip_protocol(path).rstrip("/"), list(listing))
        try:
            actual = hashing.matches(sha256, _hash_local(temp)[0], lambda: _hash_local_v1(temp))
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        if actual != sha256:
            shutil.rmtree(temp, ignore_errors=True)
            raise _corrupted(uri, actual, sha256)
        folder = remote_cache.adopt(temp, sha256)
        _remember(folder, sha256)
        remote_cache.evict(keep=folder)
        return folder

    def _verify_entry(self, folder: str, sha256: str) -> bool:
        try:
            actual = hashing.matches(sha256, _hash_local(folder)[0], lambda: _hash_local_v1(folder))
        except OSError:
            return False
        if actual != sha256:
            return False
        _remember(folder, sha256)
        return True

    def _read_cached(self, uri: str, sha256: str, load: Callable[[str, Any], T]) -> T:
        """Load a remote artifact from its verified local copy (fetched again once when a
        concurrent process removed that copy while this one was about to read it)."""
        for attempt in (1, 2):
            folder = self.cached_copy(uri, sha256)
            try:
                return load(folder, filesystem_for("file://"))
            except FileNotFoundError:
                if attempt == 2 or os.path.isdir(folder):
                    raise
        raise AssertionError("unreachable")

    def read_files(self, uri: str, sha256: str) -> dict[str, bytes]:
        """The artifact's files (relative path -> bytes), read ONCE and verified.

        The content hash is computed over exactly the bytes returned, so a loader that
        deserializes them (pickle, joblib) loads what was verified: a file swapped after the
        check cannot be loaded. For materializers whose loading runs code.
        """
        files: dict[str, bytes] = {}
        if _is_local(uri):
            listing: list[tuple[str, str]] = []
            try:
                _list_local(_strip_file(uri), "", listing)
                for rel, full in listing:
                    with open(full, "rb") as handle:
                        files[rel] = handle.read()
            except (FileNotFoundError, NotADirectoryError):
                raise _missing(uri) from None
        else:
            # The local copy, verified; its bytes are read and hashed once more below, so
            # what is unpickled is exactly what was verified.
            return self.read_files(self.cached_copy(uri, sha256), sha256)
        actual = hashing.matches(
            sha256, hashing.bytes_digest(files), lambda: hashing.bytes_digest_v1(files)
        )
        if actual != sha256:
            raise _corrupted(uri, actual, sha256)
        return files

    def stamp(self, uri: str) -> dict[str, Any]:
        """What a later cache hit checks cheaply (see :meth:`verify_stamp`).

        ``files``: sha256 of the sorted file names and sizes; for a local folder also ``stat``:
        sha256 of each file's size, mtime, ctime and inode as they were when it was hashed.
        """
        if _is_local(uri):
            folder = _strip_file(uri)
            entry = _VERIFIED.get(folder)
            signature = entry[1] if entry is not None else _signature(folder)
            return {"files": _manifest(signature), "stat": _stat_digest(signature)}
        uploaded = _UPLOADED.get(uri)
        if uploaded is not None:  # written by this process: no listing request
            return {"files": _manifest(uploaded)}
        fs, path = _url_to_fs(uri)
        return {"files": _manifest(_remote_listing(fs, path))}

    def verify_stamp(self, uri: str, sha256: str, recorded: Mapping[str, Any]) -> str | None:
        """Why a cached artifact cannot be served, or None when it is intact.

        Cheap in the usual case: a local folder whose files keep the size, mtime, ctime and
        inode recorded when it was written is taken as intact (as git's index does); one whose
        file names or sizes differ is refused without reading it; any other change is hashed
        in full and compared with ``sha256``. A remote folder is compared by file names and
        sizes (its consumers verify the full hash when they load it).
        """
        if _is_local(uri):
            folder = _strip_file(uri)
            if _still_verified(folder, sha256, racy_ok=True):
                return None  # hashed by this process, unchanged since: a few stats
            signature = _signature(folder)  # one listing: () when the folder is gone
            if not signature and not os.path.isdir(folder):
                return "its folder does not exist"
            if "files" in recorded and _manifest(signature) != recorded["files"]:
                return "its files or their sizes changed"
            if recorded.get("stat") and _stat_digest(signature) == recorded["stat"]:
                return None
            try:
                actual = hashing.matches(
                    sha256, _hash_local(folder)[0], lambda: _hash_local_v1(folder)
                )
            except OSError as exc:
                return f"it cannot be read ({exc.strerror})"
            if actual != sha256:
                return f"its content sha256 is {actual}, {sha256} was recorded"
            _remember(folder, actual)
            return None
        fs, path = _url_to_fs(uri)
        try:
            listing = _remote_listing(fs, path)
        except (FileNotFoundError, OSError):
            listing = ()
        if not listing:
            return "its folder does not exist"
        if "files" in recorded and _manifest(listing) != recorded["files"]:
            return "its files or their sizes changed"
        return None

    def missing_locally(self, uri: str) -> bool:
        """True when ``uri`` is a local artifact folder that no longer exists (a cheap check;
        remote artifacts are not looked up and count as present)."""
        return _is_local(uri) and not os.path.isdir(_strip_file(uri))

    def _actual_hash(self, uri: str, sha256: str) -> str:
        """The content hash of ``uri`` to compare with the recorded ``sha256`` (either hash
        scheme, see :func:`hashing.matches`)."""
        actual = self.content_hash(uri)
        if actual == sha256:
            return actual
        if _is_local(uri):
            return hashing.matches(sha256, actual, lambda: _hash_local_v1(_strip_file(uri)))
        fs, path = _url_to_fs(uri)
        return hashing.matches(sha256, actual, lambda: _hash_fs_v1(fs, path))

    def content_hash(self, uri: str) -> str:
        """sha256 of an artifact folder; a BridgeError when it does not exist."""
        if _is_local(uri):
            try:
                return _hash_local(_strip_file(uri))[0]
            except (FileNotFoundError, NotADirectoryError):
                raise _missing(uri) from None
        fs, path = _url_to_fs(uri)
        if not fs.exists(path):
            raise _missing(uri)
        return _hash_fs(fs, path)[0]


#: Temporary folders of writers that are gone are removed after this many seconds at most
#: (at once when the writer was a process of this machine that no longer exists).
ENV_TEMP_MAX_AGE = "ZENML_BRIDGE_TEMP_MAX_AGE"
_HOST = hashlib.sha256(
    (os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")).encode()
).hexdigest()[:8]


def _writer_tag() -> str:
    """``<host>-<pid>-<random>``: whose temporary folder it is (the pid at write time: a forked
    step process writes its own). The random part is this process's random seed and a counter:
    unique per write without a syscall for the pid and for fresh random bytes every time."""
    return f"{_HOST}-{_TAG[0]}-{_TAG[1]}{next(_TAG_COUNT):x}"


def _new_tag() -> None:
    global _TAG
    _TAG = (os.getpid(), secrets.token_hex(6))


#: (pid, random seed) of this process; a forked child makes its own (os.register_at_fork).
_TAG: tuple[int, str] = (0, "")
_TAG_COUNT = itertools.count()
_new_tag()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_tag)


def _stale_temp(path: str, prefix: str) -> bool:
    """Whether a temporary artifact folder was left by a writer that is gone: a process of
    this machine that no longer exists, or any writer after ``ZENML_BRIDGE_TEMP_MAX_AGE``
    seconds (default a day). A live writer's folder is never removed."""
    parts = os.path.basename(path)[len(prefix) :].split("-")
    if len(parts) == 3 and parts[0] == _HOST and parts[1].isdigit():
        pid = int(parts[1])
        if pid == os.getpid():
            return False  # this process writes it (another thread)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError):
            pass
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        return False
    try:
        limit = float(os.environ.get(ENV_TEMP_MAX_AGE) or 86400)
    except ValueError:
        limit = 86400.0
    return age > limit


def _settle_local(temp: str, final: str, digest: str) -> str:
    """Where this attempt's output goes when ``final`` exists already: the existing folder
    when it holds the same content (this one is discarded), else a sibling named by this
    content's hash (``<output>.<sha256[:16]>``), so that a recorded artifact is never
    replaced. The metadata store decides which attempt's record wins."""
    try:
        existing = _hash_local(final)[0]
    except OSError:
        existing = None
    if existing == digest:
        shutil.rmtree(temp, ignore_errors=True)
        return final
    other = f"{final}.{digest[:16]}"
    try:
        os.rename(temp, other)
    except OSError:  # the same content is there already (its name is its hash)
        shutil.rmtree(temp, ignore_errors=True)
    return other


#: folder -> (sha256, signature of its files, when hashed, files hashed while being written or
#: None) for artifacts this process hashed (None: verified by reading, not written here).
_VERIFIED: dict[
    str, tuple[str, tuple[tuple[str, int, int, int, int], ...], int, frozenset[str] | None]
] = {}
#: File times are coarse (a clock tick): a file changed within this window of being hashed
#: could keep its times, so such a "racy" entry is always hashed again (as git does).
_RACY_NS = 50_000_000


#: folder -> (mtime, ctime, inode) of the folder itself when it was hashed: an entry added,
#: removed or renamed in it changes them, so unchanged files need only one stat each.
_FOLDER_STAT: dict[str, tuple[int, int, int]] = {}


def _still_verified(folder: str, sha256: str, *, racy_ok: bool = False) -> bool:
    """Whether this process hashed ``folder`` to ``sha256`` and nothing changed since.

    One stat of the folder and one per file (no listing): a file added or removed changes the
    folder's times, a file changed in place its own (a nested folder's new entries are seen
    through its files' entries only when they are rewritten; full hashes catch the rest).
    ``racy_ok`` accepts an entry hashed within a clock tick of a change (the cache-hit check
    does, as it accepts a recorded stamp: a consumer still hashes such an entry on load).
    A folder this process wrote, and each file hashed while it was written, is never racy:
    the bytes were hashed as they went to disk and the stats taken after the last change, so
    a later change shows in them (the documented limit of any stat check remains: an edit
    within the same clock tick keeping size and times; Linux 6.13+ gives such an edit a
    distinct time once the first was looked at).
    """
    entry = _VERIFIED.get(folder)
    if entry is None or entry[0] != sha256:
        return False
    try:
        st = os.stat(folder)
        if (st.st_mtime_ns, st.st_ctime_ns, st.st_ino) != _FOLDER_STAT.get(folder):
            return False
        written = entry[3]
        newest = 0 if written is not None else max(st.st_mtime_ns, st.st_ctime_ns)
        for rel, size, mtime, ctime, ino in entry[1]:
            st = os.stat(os.path.join(folder, rel))
            if (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) != (size, mtime, ctime, ino):
                return False
            if written is None or rel not in written:
                newest = max(newest, mtime, ctime)
    except OSError:
        return False
    return racy_ok or newest < entry[2] - _RACY_NS


def _signature(folder: str) -> tuple[tuple[str, int, int, int, int], ...]:
    files: list[tuple[str, str]] = []
    try:
        _list_local(_strip_file(folder), "", files)
    except OSError:
        return ()
    result = []
    for rel, full in sorted(files):
        st = os.stat(full)
        result.append((rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return tuple(result)


def _remember(
    folder: str,
    digest: str,
    written: frozenset[str] | None = None,
    signature: tuple[tuple[str, int, int, int, int], ...] | None = None,
) -> None:
    """Record that ``folder`` hashed to ``digest``; ``signature`` (the files' stats, sorted
    by relative path, as :func:`_signature` gives them) when the caller has it already."""
    if len(_VERIFIED) > 10_000:
        _VERIFIED.clear()
        _FOLDER_STAT.clear()
    try:
        st = os.stat(folder)
    except OSError:
        return
    _FOLDER_STAT[folder] = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if signature is None:
        signature = _signature(folder)
    _VERIFIED[folder] = (digest, signature, time.time_ns(), written)


def _corrupted(uri: str, actual: str, sha256: str) -> BridgeError:
    return BridgeError(
        f"The artifact at {uri} is corrupted: its content sha256 is {actual}, but "
        f"{sha256} was recorded when it was written. It was changed after writing; "
        "re-run the step that produced it (its cache entry is replaced on the next run)."
    )


def _manifest(listing: Iterable[tuple[Any, ...]]) -> str:
    """sha256 of ``name NUL size`` lines of a listing (sorted by name)."""
    text = "".join(f"{item[0]}\0{item[1]}\n" for item in sorted(listing))
    return hashlib.sha256(text.encode()).hexdigest()


def _stat_digest(signature: Iterable[tuple[str, int, int, int, int]]) -> str:
    text = "".join("\0".join(map(str, item)) + "\n" for item in signature)
    return hashlib.sha256(text.encode()).hexdigest()


#: uri -> (relative path, size) of each file of remote artifacts this process uploaded.
_UPLOADED: dict[str, tuple[tuple[str, int], ...]] = {}


def _remote_listing_or_empty(fs: Any, path: str) -> tuple[tuple[str, int], ...]:
    try:
        return _remote_listing(fs, path)
    except (FileNotFoundError, OSError):
        return ()


def _remote_listing(fs: Any, path: str) -> tuple[tuple[str, int], ...]:
    folder = fs._strip_protocol(path).rstrip("/")
    found = fs.find(folder, detail=True)
    return tuple(
        sorted(
            (name[len(folder) + 1 :], int(info.get("size") or 0)) for name, info in found.items()
        )
    )


def _missing(uri: str) -> BridgeError:
    return BridgeError(
        f"The artifact at {uri} does not exist (deleted, or the artifact root moved). Re-run the "
        "step that produced it with --no-cache."
    )


def _list_local(folder: str, prefix: str, out: list[tuple[str, str]]) -> None:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                _list_local(entry.path, f"{prefix}{entry.name}/", out)
            else:
                out.append((prefix + entry.name, entry.path))


def _hash_local(folder: str) -> tuple[str, int]:
    """``(content hash, total size)`` of a local folder, reading every file."""
    files: list[tuple[str, str]] = []
    _list_local(folder, "", files)
    triples = []
    for rel, full in files:
        size, sha = hashing.hash_file(full)
        triples.append((rel, size, sha))
    return hashing.folder_digest(triples), sum(t[1] for t in triples)


def _hash_written(
    folder: str, written: Mapping[str, tuple[int, str, hashing.Stat]]
) -> tuple[str, int, frozenset[str], tuple[tuple[str, int, int, int, int], ...]]:
    """Like :func:`_hash_local` for a folder just written through a :class:`HashingLocalFS`:
    a file hashed while it was written, unchanged since it was closed, is not read again.
    Also returns the relative paths of those files, and the folder's signature (see
    :func:`_signature`): each file's stat as it was when its hash was taken or checked."""
    files: list[tuple[str, str]] = []
    _list_local(folder, "", files)
    files.sort()
    triples = []
    signature = []
    hashed_while_written = []
    for rel, full in files:
        known = written.get(full) or written.get(os.path.abspath(full))
        stat = hashing.stat_of(full)
        if known is not None and stat == known[2]:
            triples.append((rel, known[0], known[1]))
            hashed_while_written.append(rel)
        else:
            size, sha = hashing.hash_file(full)
            triples.append((rel, size, sha))
            stat = hashing.stat_of(full)  # as _signature would take it after the hash
        signature.append((rel, *stat))
    total = sum(t[1] for t in triples)
    return (
        hashing.folder_digest(triples),
        total,
        frozenset(hashed_while_written),
        tuple(signature),
    )


def _hash_local_v1(folder: str) -> str:
    """The scheme-1 content hash (recorded by earlier versions, see :mod:`hashing`)."""
    files: list[tuple[str, str]] = []
    _list_local(folder, "", files)
    files.sort()
    digest = hashlib.sha256()
    for rel, full in files:
        with open(full, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest.update(f"{rel}\0{size}\0".encode())
            if size <= _CHUNK:
                digest.update(handle.read())
            else:
                hashlib_file(handle, digest)
    return digest.hexdigest()


def hashlib_file(handle: Any, digest: Any) -> None:
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    while n := handle.readinto(buffer):
        digest.update(view[:n])


def _hash_fs(fs: Any, folder: str) -> tuple[str, int]:
    folder = fs._strip_protocol(folder).rstrip("/")
    triples = []
    for full in sorted(fs.find(folder)):
        data = fs.cat_file(full)
        triples.append((full[len(folder) + 1 :], len(data), hashing.file_digest(data)))
    return hashing.folder_digest(triples), sum(t[1] for t in triples)


def _hash_fs_v1(fs: Any, folder: str) -> str:
    folder = fs._strip_protocol(folder).rstrip("/")
    return hashing.bytes_digest_v1(
        {full[len(folder) + 1 :]: fs.cat_file(full) for full in sorted(fs.find(folder))}
    )


def filesystem_for(url: str) -> Any:
    """The fsspec filesystem for a URL or local path."""
    if _is_local(url):
        return LocalFS()
    return _url_to_fs(url)[0]


class LocalFS:
    """Local files through fsspec's interface, importing fsspec only when really needed.

    ``open``, ``exists`` and ``makedirs`` (all the built-in materializers use for small values)
    are served with ``os``; any other attribute, and ``isinstance(fs, LocalFileSystem)``,
    loads fsspec's (fast) LocalFileSystem and defers to it. Importing fsspec costs more than a
    whole small pipeline run.
    """

    protocol = ("file", "local")

    def open(self, path: Any, mode: str = "rb", **kwargs: Any) -> Any:
        plain = isinstance(path, str) and "://" not in path and mode in _PLAIN_MODES
        if plain and set(kwargs) <= {"encoding"}:
            if "b" in mode:
                return open(path, mode)
            return open(path, mode, encoding=kwargs.get("encoding"))
        return _fast_local().open(path, mode, **kwargs)

    def exists(self, path: str, **kwargs: Any) -> bool:
        return os.path.exists(_strip_file(path))

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        os.makedirs(_strip_file(path), exist_ok=exist_ok)

    def __getattr__(self, name: str) -> Any:
        return getattr(_fast_local(), name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(_fast_local())


_PLAIN_MODES = ("rb", "wb", "r", "w", "ab", "a")


class HashingLocalFS(LocalFS):
    """The local filesystem a materializer writes a new artifact through: a file opened with
    ``open(path, "wb")`` is hashed as it is written (:attr:`written`), so the store does not
    read it back. Materializers need nothing special (Arrow writers check ``hashes_writes``
    to write through it rather than through their own native file)."""

    hashes_writes = True

    def __init__(self, remote: bool = False, made: str | None = None) -> None:
        #: absolute path -> (size, sha256, stat right after it was closed)
        self.written: dict[str, tuple[int, str, hashing.Stat]] = {}
        #: True when the folder is staged for a remote store (materializers may compress)
        self.remote_destination = remote
        #: the folder the store created for the artifact: ``makedirs`` of it is a no-op
        self._made = made

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        # Every materializer prepares its folder: three syscalls (stat, mkdir, stat) to learn
        # what the store knows. The store created it a moment ago and nobody else writes there.
        if exist_ok and path == self._made:
            return
        super().makedirs(path, exist_ok=exist_ok)

    def open(self, path: Any, mode: str = "rb", **kwargs: Any) -> Any:
        if isinstance(path, str) and "://" not in path:
            self.written.pop(os.path.abspath(path), None)  # re-opened: hashed again if so
            if mode == "wb" and not kwargs:
                return hashing.HashingWriter(path, self._closed)
        return super().open(path, mode, **kwargs)

    def _closed(self, path: str, size: int, sha: str, trusted: bool) -> None:
        if trusted:  # the stat is taken now: any later change of the file shows in it
            self.written[os.path.abspath(path)] = (size, sha, hashing.stat_of(path))


_LOCAL_FS: Any = None


def _fast_local() -> Any:
    """fsspec's LocalFileSystem whose plain ``open`` returns a built-in file.

    fsspec wraps every local file in a Python-level opener; for the small artifacts of most
    steps that wrapper costs more than the write itself. Anything beyond a plain open (other
    kwargs, compression) goes through fsspec unchanged.
    """
    global _LOCAL_FS
    if _LOCAL_FS is None:
        from fsspec.implementations.local import LocalFileSystem

        class FastLocalFileSystem(LocalFileSystem):  # type: ignore[misc]
            def open(self, path: Any, mode: str = "rb", **kwargs: Any) -> Any:
                if (
                    isinstance(path, str)
                    and "://" not in path
                    and mode in ("rb", "wb", "r", "w", "ab", "a")
                    and set(kwargs) <= {"encoding"}
                ):
                    if "b" not in mode:
                        return open(path, mode, encoding=kwargs.get("encoding"))
                    return open(path, mode)
                return super().open(path, mode, **kwargs)

        _LOCAL_FS = FastLocalFileSystem()
    return _LOCAL_FS


def _url_to_fs(url: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)  # type: ignore[no-any-return]
    except (ImportError, ValueError) as exc:
        raise BridgeError(
            f"The artifact URL {url} needs an fsspec filesystem that is not available ({exc}). "
            "Install the fsspec plugin for its protocol (e.g. s3fs for s3://, gcsfs for gs://)."
        ) from None


def _unstrip(fs: Any, path: str) -> str:
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple | list) else fs.protocol
    return path if "://" in path else f"{protocol}://{path}"
