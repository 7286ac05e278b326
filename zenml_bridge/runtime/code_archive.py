"""Ship a pipeline's IR and source code to workers through the artifact store.

Compile side (the ``compile`` command, for every backend that runs steps elsewhere)::

    ir_uri, ir_sha = publish_ir(pipeline_ir, artifact_root)
    archive = build_code_archive(pipeline_ir)     # the project's source files, packed
    code_uri = publish_code_archive(archive, artifact_root)

Worker side (``python -m zenml_bridge.entrypoint run-step --code-archive URI ...``)::

    ensure_code(code_uri, archive.sha256)         # fetched, verified, unpacked, on sys.path

Both documents are content-addressed: ``<root>/.zenml_bridge/ir/<sha256>.json`` and
``<root>/.zenml_bridge/code/<sha256>.tar.gz``. The archive is deterministic (sorted paths, zeroed
times and owners), so the same files always give the same bytes and the same sha256, and a
re-compile without code changes uploads nothing new. It holds the files git would track in the
project's repository (tracked, and untracked but not ignored), or, outside a repository, the
folder of the pipeline's module; ``.git``, virtual environments, caches and ``.zenml_bridge``
are always left out. A manifest in the archive names the folders to put on ``sys.path``.

Example:
    >>> archive = build_code_archive(training.to_ir())     # doctest: +SKIP
    >>> archive.sha256, len(archive.files)                  # doctest: +SKIP
    ('4f1c...', 12)
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from zenml_bridge import ir
from zenml_bridge.errors import BridgeError

MANIFEST = ".zenml_bridge_code.json"
ENV_CACHE = "ZENML_BRIDGE_CODE_CACHE"
#: Folder names never packed: VCS data, environments, caches, our own stores.
SKIP_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", "__pycache__", ".tox", ".nox", ".venv", "venv", ".mypy_cache",
        ".pytest_cache", ".ruff_cache", ".hypothesis", "node_modules", ".zenml_bridge",
        ".ipynb_checkpoints", ".eggs",
    }
)  # fmt: skip
SKIP_SUFFIXES = (".pyc", ".pyo")
#: Archives above this size are refused: a source archive that big holds data, not code.
MAX_BYTES = 200 * 2**20
#: Limits of what a worker unpacks (and what a compile packs), each overridable by its
#: environment variable: a hostile or broken archive must not fill the worker's disk.
ENV_MAX_BYTES = "ZENML_BRIDGE_CODE_ARCHIVE_MAX_BYTES"
ENV_MAX_FILES = "ZENML_BRIDGE_CODE_ARCHIVE_MAX_FILES"
ENV_MAX_PATH = "ZENML_BRIDGE_CODE_ARCHIVE_MAX_PATH"
MAX_FILES = 20_000
MAX_PATH = 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Limits:
    """What an archive may hold: unpacked bytes, entries, characters of an entry's path."""

    max_bytes: int = MAX_BYTES
    max_files: int = MAX_FILES
    max_path: int = MAX_PATH

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, overridden by ``ZENML_BRIDGE_CODE_ARCHIVE_MAX_{BYTES,FILES,PATH}``."""
        values = {}
        for name, env, default in (
            ("max_bytes", ENV_MAX_BYTES, MAX_BYTES),
            ("max_files", ENV_MAX_FILES, MAX_FILES),
            ("max_path", ENV_MAX_PATH, MAX_PATH),
        ):
            raw = os.environ.get(env, "").strip()
            if not raw:
                values[name] = default
                continue
            try:
                values[name] = int(raw)
            except ValueError:
                values[name] = -1
            if values[name] < 1:
                raise BridgeError(
                    f"{env}={raw!r} is not a whole number of 1 or more. Set it to a positive "
                    f"limit (default {default}) or unset it."
                )
        return cls(**values)


@dataclass(frozen=True, slots=True)
class CodeArchive:
    """A packed project: its bytes, their sha256, the packed files and the sys.path folders."""

    data: bytes
    sha256: str
    root: Path
    files: tuple[str, ...]
    sys_path: tuple[str, ...]


# -- compile side -----------------------------------------------------------------------------


def build_code_archive(pipeline: ir.Pipeline) -> CodeArchive:
    """Pack the source of ``pipeline``'s project (its modules must be importable here).

    Raises:
        BridgeError: a module of the pipeline cannot be found, or the project is too big.
    """
    roots = _import_roots(pipeline)
    pipeline_root = roots[0][0]
    root = _git_toplevel(pipeline_root) or pipeline_root
    inside = [(r, f) for r, f in roots if _is_within(r, root)]
    sys_path = tuple(dict.fromkeys(_relative(r, root) for r, _ in inside))
    files = set(project_files(root))
    # The pipeline's own modules are needed even when ignored by git.
    files.update(_relative(f, root) for _, f in inside if _is_within(f, root))
    return pack(root, sorted(files), sys_path)


def project_files(root: Path) -> list[str]:
    """Relative POSIX paths of the files to pack below ``root``, sorted."""
    listed = _git_files(root)
    if listed is None:
        listed = _walk_files(root)
    # A folder holding pyvenv.cfg is a virtual environment, whatever its name.
    venvs = tuple(p[: -len("pyvenv.cfg")] for p in listed if p.endswith("/pyvenv.cfg"))
    return sorted(
        path
        for path in listed
        if not _skipped(path)
        and not (venvs and path.startswith(venvs))
        and (root / path).is_file()
        and not (root / path).is_symlink()
    )


def pack(root: Path, files: Sequence[str], sys_path: Sequence[str]) -> CodeArchive:
    """A deterministic ``.tar.gz`` of ``files`` (relative to ``root``) plus the manifest.

    Raises:
        BridgeError: the archive would exceed what workers unpack (:class:`Limits`).
    """
    limits = Limits.from_env()
    max_bytes = min(MAX_BYTES, limits.max_bytes)
    if len(files) + 1 > limits.max_files:
        raise BridgeError(
            f"The code archive of {root} would hold {len(files) + 1} files; workers unpack at "
            f"most {limits.max_files} ({ENV_MAX_FILES}). Ignore files that are not code in "
            ".gitignore, raise the limit on both sides, or compile with --no-code-archive."
        )
    for relative in files:
        if len(relative) > limits.max_path:
            raise BridgeError(
                f"The code archive of {root} would hold the path {relative[:80]!r}... of "
                f"{len(relative)} characters; workers accept at most {limits.max_path} "
                f"({ENV_MAX_PATH}). Shorten it, or ignore it in .gitignore."
            )
    buffer = io.BytesIO()
    total = 0
    manifest = json.dumps({"format": 1, "sys_path": list(sys_path)}, sort_keys=True).encode()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        _add(tar, MANIFEST, manifest, executable=False)
        for relative in files:
            path = root / relative
            data = path.read_bytes()
            total += len(data)
            if total > max_bytes:
                raise BridgeError(
                    f"The code archive of {root} grows beyond {max_bytes / 2**20:g} MiB (at "
                    f"{relative}): it would carry data, not code. Ignore large files in "
                    ".gitignore, or compile with --no-code-archive and install the code "
                    "on the workers."
                )
            _add(tar, relative, data, executable=os.access(path, os.X_OK))
    data = buffer.getvalue()
    return CodeArchive(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        root=root,
        files=tuple(files),
        sys_path=tuple(sys_path),
    )


def publish_ir(pipeline: ir.Pipeline, artifact_root: str) -> tuple[str, str]:
    """Store the IR at ``<root>/.zenml_bridge/ir/<sha256>.json``; returns ``(uri, sha256)``."""
    sha = ir.sha256(pipeline)
    uri = _put(artifact_root, f".zenml_bridge/ir/{sha}.json", ir.dumps(pipeline).encode("utf-8"))
    return uri, sha


def publish_code_archive(archive: CodeArchive, artifact_root: str) -> str:
    """Store the archive at ``<root>/.zenml_bridge/code/<sha256>.tar.gz``; returns its URI."""
    return _put(artifact_root, f".zenml_bridge/code/{archive.sha256}.tar.gz", archive.data)


# -- worker side ------------------------------------------------------------------------------


def ensure_code(uri: str, sha256: str, cache_dir: str | Path | None = None) -> Path:
    """Make the archive's code importable: fetch, verify and unpack it once per worker.

    The unpacked tree lives in ``<cache>/<sha256>/`` (``$ZENML_BRIDGE_CODE_CACHE``, default
    ``~/.cache/zenml_bridge/code``). Concurrent workers unpack into private temporary folders and
    rename them into place, so a reader sees a complete tree or none. The manifest's folders go
    to the front of ``sys.path``; the first one is returned.

    Raises:
        BridgeError: the archive is missing, its sha256 differs, it is malformed or exceeds the
            :class:`Limits`, its manifest names folders outside it, or the cache has no space.
    """
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        # It names a folder of the cache: anything but a sha256 could point elsewhere.
        raise BridgeError(
            f"--code-archive-sha256 {str(sha256)[:80]!r} is not a sha256 (64 lower-case hex "
            "digits). Pass the code_archive_sha256 the compile printed, or compile again."
        )
    cache = Path(cache_dir or os.environ.get(ENV_CACHE) or _default_cache())
    folder = cache / sha256
    if not folder.is_dir():
        limits = Limits.from_env()
        _unpack(_fetch(uri, sha256, limits), folder, limits)
    paths = manifest_paths(folder)
    for path in reversed(paths):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    # First on sys.path so that the archive's modules win over same-named ones elsewhere;
    # finders cache folder listings, and these folders may have appeared just now.
    importlib.invalidate_caches()
    return Path(paths[0])


def manifest_paths(folder: Path) -> list[str]:
    """The absolute ``sys.path`` folders the manifest of an unpacked archive names.

    Raises:
        BridgeError: the manifest is missing or malformed, or names a folder outside ``folder``
            (only folders of the archive itself may go first on ``sys.path``).
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        manifest = None
    entries = manifest.get("sys_path", ["."]) if isinstance(manifest, dict) else None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != 1
        or not isinstance(entries, list)
        or not all(isinstance(entry, str) for entry in entries)
    ):
        raise BridgeError(
            f"The unpacked code archive {folder} has no valid {MANIFEST} (format 1, a list "
            "'sys_path' of folders). Delete the folder and run the step again; if it comes "
            "back, compile the pipeline again."
        )
    root = folder.resolve()
    paths = []
    for entry in entries or ["."]:
        path = (root / entry).resolve()
        relative = PurePosixPath(entry)
        if (
            relative.is_absolute()
            or ".." in relative.parts
            or "\\" in entry
            or not (path == root or root in path.parents)
            or not path.is_dir()
        ):
            raise BridgeError(
                f"The manifest of the code archive {folder} puts {entry[:200]!r} on sys.path, "
                "which is not a folder inside the archive. Compile the pipeline again (only "
                "folders of the archive may be named)."
            )
        paths.append(str(path))
    return paths


def _fetch(uri: str, sha256: str, limits: Limits | None = None) -> bytes:
    from zenml_bridge.stores.artifacts import filesystem_for, is_local_url, local_path

    try:
        if is_local_url(uri):
            data = Path(local_path(uri)).read_bytes()
        else:
            data = filesystem_for(uri).cat_file(uri)
    except FileNotFoundError:
        raise BridgeError(
            f"The code archive {uri} does not exist. Compile the pipeline again (it uploads the "
            "archive) and check that workers use the same artifact store."
        ) from None
    limits = limits or Limits()
    if len(data) > limits.max_bytes:
        raise _too_big(uri, f"{len(data)} compressed bytes", limits.max_bytes, ENV_MAX_BYTES)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BridgeError(
            f"The code archive {uri} has sha256 {actual}, expected {sha256}: it was changed "
            "after compiling. Compile the pipeline again."
        )
    return bytes(data)


def _too_big(what: str, amount: str, limit: int, env: str) -> BridgeError:
    return BridgeError(
        f"The code archive{' ' + what if what else ''} holds {amount}, over the limit of "
        f"{limit} ({env}). Compile with fewer files (or --no-code-archive), or raise {env} "
        "on the workers."
    )


class _BoundedReader(io.RawIOBase):
    """A read-only view of a decompressing stream that refuses to go past ``limit`` bytes, so a
    small archive that inflates to gigabytes (a "zip bomb") stops early."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return int(self._stream.tell())

    def _check(self, position: int) -> None:
        if position > self._limit:
            raise _too_big("", "more data than its limits allow", self._limit, ENV_MAX_BYTES)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self.tell() + offset
        if whence in (io.SEEK_SET, io.SEEK_CUR):
            self._check(target)
        return int(self._stream.seek(offset, whence))

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._limit + 1 - self.tell()
        data: bytes = self._stream.read(min(size, self._limit + 1 - self.tell()))
        self._check(self.tell())
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _check_members(tar: tarfile.TarFile, limits: Limits) -> list[tarfile.TarInfo]:
    """The archive's entries, refused at the first one that is unsafe or over a limit."""
    members = []
    total = 0
    for member in tar:
        name = PurePosixPath(member.name)
        regular = member.isfile() or member.isdir()
        if not regular or name.is_absolute() or ".." in name.parts:
            raise BridgeError(f"The code archive holds the unsafe entry {member.name!r}.")
        if len(member.name) > limits.max_path:
            raise _too_big(
                "entry " + repr(member.name[:80]) + "...",
                f"a path of {len(member.name)} characters",
                limits.max_path,
                ENV_MAX_PATH,
            )
        members.append(member)
        total += member.size
        if len(members) > limits.max_files:
            raise _too_big(
                "", f"more than {limits.max_files} files", limits.max_files, ENV_MAX_FILES
            )
        if total > limits.max_bytes:
            raise _too_big(
                "", f"more than {limits.max_bytes} bytes", limits.max_bytes, ENV_MAX_BYTES
            )
    return members


def _unpack(data: bytes, folder: Path, limits: Limits | None = None) -> None:
    """Unpack into a private temporary folder, check the manifest, rename it into place."""
    limits = limits or Limits()
    # Headers and padding: at most 3 blocks of 512 bytes per entry beyond its data.
    stream_limit = limits.max_bytes + 1536 * (limits.max_files + 2) + 2**20
    temp = folder.parent / f".{folder.name}.tmp-{secrets.token_hex(4)}"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with (
            gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as gz,
            tarfile.open(fileobj=_BoundedReader(gz, stream_limit), mode="r:") as tar,
        ):
            members = _check_members(tar, limits)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(temp, members=members, filter="data")
            else:  # Python < 3.10.12: the entries were checked above
                tar.extractall(temp, members=members)
        manifest_paths(temp)  # a bad manifest never reaches the cache
        try:
            os.rename(temp, folder)
        except OSError:
            if not folder.is_dir():  # not a concurrent worker winning the race
                raise
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise _unpack_error(folder, exc) from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _unpack_error(folder: Path, exc: BaseException) -> BridgeError:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BridgeError(
            f"No space left to unpack the code archive into {folder}. Free space there, or "
            f"point {ENV_CACHE} at a folder with room; nothing was left half-unpacked."
        )
    if isinstance(exc, OSError):
        return BridgeError(
            f"Cannot unpack the code archive into {folder} ({exc.strerror or exc}). Point "
            f"{ENV_CACHE} at a writable folder."
        )
    return BridgeError(
        f"The code archive for {folder.name} is not a valid .tar.gz ({exc}). Compile the "
        "pipeline again."
    )


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "zenml_bridge" / "code"


# -- helpers ----------------------------------------------------------------------------------


def _put(artifact_root: str, relative: str, data: bytes) -> str:
    """Write content-addressed bytes once, atomically; returns the URI workers read."""
    from zenml_bridge.stores.artifacts import filesystem_for, is_local_url, local_path

    if is_local_url(artifact_root):
        path = Path(local_path(artifact_root)).expanduser().resolve() / relative
        if path.is_file() and path.read_bytes() == data:
            return str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.parent / f".{path.name}.tmp-{secrets.token_hex(4)}"
            temp.write_bytes(data)
            os.replace(temp, path)
        except OSError as exc:
            raise BridgeError(
                f"Cannot write {path} ({exc.strerror}). Check that the artifact root "
                f"{artifact_root} is writable, or point ZENML_BRIDGE_ARTIFACT_ROOT elsewhere."
            ) from None
        return str(path)
    uri = f"{artifact_root.rstrip('/')}/{relative}"
    fs = filesystem_for(uri)
    if not fs.exists(uri):
        fs.pipe_file(uri, data)  # one object PUT: atomic on object stores
    return uri


def _import_roots(pipeline: ir.Pipeline) -> list[tuple[Path, Path]]:
    """``(import root, module file)`` of the pipeline's module, then of each step's module."""
    modules = [pipeline.source, *(step.source for step in pipeline.steps)]
    found: list[tuple[Path, Path]] = []
    for source in dict.fromkeys(s.partition(":")[0] for s in modules):
        module_file = _module_file(source)
        if module_file is None:
            if source == modules[0].partition(":")[0]:
                raise BridgeError(
                    f"Cannot find the file of module '{source}' (pipeline '{pipeline.name}') to "
                    "pack its code. Import it from a file, or compile with --no-code-archive."
                )
            continue  # e.g. a built-in module; workers have it
        depth = source.count(".") + (1 if module_file.name == "__init__.py" else 0)
        found.append((module_file.parents[depth], module_file))
    return found


def _module_file(module: str) -> Path | None:
    loaded = sys.modules.get(module)
    origin = getattr(loaded, "__file__", None)
    if origin is None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec else None
    if not origin or not origin.endswith(".py"):
        return None
    return Path(origin).resolve()


def _git_toplevel(folder: Path) -> Path | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return Path(result.stdout.strip()).resolve() if result.returncode == 0 else None


def _git_files(root: Path) -> list[str] | None:
    if _git_toplevel(root) != root.resolve():
        return None
    command = [
        "git",
        "-C",
        str(root),
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        return None
    return sorted({p for p in result.stdout.decode("utf-8", "surrogateescape").split("\0") if p})


def _walk_files(root: Path) -> list[str]:
    found = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in SKIP_DIRS
            and not d.endswith(".egg-info")
            and not (here / d / "pyvenv.cfg").exists()
            and not (here / d).is_symlink()
        )
        found += [(here / n).relative_to(root).as_posix() for n in names]
    return found


def _skipped(relative: str) -> bool:
    parts = PurePosixPath(relative).parts
    return (
        any(part in SKIP_DIRS or part.endswith(".egg-info") for part in parts[:-1])
        or relative.endswith(SKIP_SUFFIXES)
        or relative == MANIFEST
    )


def _add(tar: tarfile.TarFile, name: str, data: bytes, executable: bool) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o755 if executable else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else "."
