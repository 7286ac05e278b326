"""The code hash of a step: what its cache key says about the code that runs.

Computed once when a pipeline is traced (stored in the IR as ``Step.code_hash`` with the policy
in ``Step.cache_code``) and computed again by the worker just before it executes the step, which
refuses to run code whose hash differs (:func:`current_code_hash`). A cache hit needs neither.

Policies (``@step(cache_code=...)``):

- ``"function"``: the function's own source text (its bytecode when there is no source).
- ``"module"`` (the default): the bytes of the step's module file and of every project-local
  module it imports, transitively. Project-local means a ``.py`` file found for the imported
  name under the step module's import root (the ``sys.path`` folder it was imported from). When
  that root is an installed location (``site-packages``), only modules of the step's own
  top-level package count. zenml-bridge itself never counts.
- ``"project"``: every ``.py`` file of the step's top-level package (for a top-level module:
  every ``.py`` file under its folder, skipping hidden folders and virtualenvs).

Not covered: the versions of installed libraries, unless ``@step(cache_env=True)`` adds the
installed versions of the distributions the covered modules import (:func:`env_hash`).

Files are hashed once per process: results are memoized by path, size, mtime, ctime and inode.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import textwrap
from collections.abc import Callable, Iterable
from typing import Any

POLICIES = ("function", "module", "project")

#: path -> (stat signature, sha256 of the bytes, import statements)
_FILES: dict[
    str, tuple[tuple[int, int, int, int], str, tuple[tuple[int, str, tuple[str, ...]], ...]]
] = {}
#: (module, file, policy) -> (hash, ((path, stat signature), ...)) of the covered files
_GRAPHS: dict[tuple[str, str, str], tuple[str, tuple[tuple[str, Any], ...]]] = {}
_FUNCTIONS: dict[tuple[str, str, Any], str] = {}
_SKIP_TOP = ("zenml_bridge",)
_SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages", "node_modules"}


def function_hash(func: Callable[..., Any]) -> str:
    """sha256 of the function's source text (its bytecode when the source is not available)."""
    try:
        text = textwrap.dedent(inspect.getsource(func)).encode("utf-8")
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        if code is None:  # a callable object without source: its class names it
            cls = type(func)
            text = f"{cls.__module__}.{cls.__qualname__}".encode()
        else:
            text = code.co_code + repr(code.co_consts).encode("utf-8")
    return hashlib.sha256(text).hexdigest()


#: (file, module) -> what step_file found (equal code objects may come from other files).
_STEP_FILES: dict[tuple[str, Any], tuple[str, str] | None] = {}


def step_file(func: Callable[..., Any]) -> tuple[str, str] | None:
    """``(module name, file)`` whose contents a module/project policy hashes, if it has one."""
    module = getattr(func, "__module__", None)
    code = getattr(func, "__code__", None)
    filename = code.co_filename if code is not None else ""
    key = (filename, module)
    if key in _STEP_FILES:
        return _STEP_FILES[key]
    found = None
    if module and filename.endswith(".py") and os.path.isfile(filename):
        found = (module, os.path.abspath(filename))
    _STEP_FILES[key] = found
    return found


def code_hash(func: Callable[..., Any], policy: str = "module") -> tuple[str, str]:
    """``(effective policy, sha256)`` of the code a step runs under ``policy``.

    A function without a source file (``exec``, a notebook cell) falls back to "function".
    """
    if policy not in POLICIES:
        raise ValueError(policy)
    located = None if policy == "function" else step_file(func)
    if located is None:
        return "function", _function_hash_cached(func)
    module, filename = located
    return policy, _graph_hash(module, filename, policy)


def current_code_hash(target: Any, policy: str) -> str:
    """The hash of ``target`` (a step object or function) as it is on this machine now."""
    func = getattr(target, "func", target)
    if policy != "function":
        located = step_file(func)
        if located is not None:
            return _graph_hash(located[0], located[1], policy)
    return _function_hash_cached(func)


def covered_files(func: Callable[..., Any], policy: str = "module") -> list[str]:
    """The files (absolute paths) a module/project hash of ``func`` covers."""
    located = step_file(func)
    if located is None or policy == "function":
        return []
    _graph_hash(*located, policy)
    return [path for path, _sig in _GRAPHS[(*located, policy)][1]]


def env_hash(func: Callable[..., Any], policy: str = "module") -> str:
    """sha256 of ``name==version`` of the installed distributions the covered modules import."""
    import importlib.metadata as md

    names: set[str] = set()
    files = covered_files(func, policy) or [getattr(func.__code__, "co_filename", "")]
    for path in files:
        info = _file_info(path)
        if info is None:
            continue
        for level, target, _names in info[2]:
            if level == 0 and target:
                names.add(target.split(".", 1)[0])
    mapping = _packages_distributions()
    dists = sorted({dist for name in names for dist in mapping.get(name, ())})
    lines = []
    for dist in dists:
        try:
            lines.append(f"{dist}=={md.version(dist)}")
        except md.PackageNotFoundError:  # pragma: no cover - listed but not installed
            continue
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


_PACKAGES: dict[str, list[str]] | None = None


def _packages_distributions() -> dict[str, list[str]]:
    global _PACKAGES
    if _PACKAGES is None:
        import importlib.metadata as md

        _PACKAGES = dict(md.packages_distributions())
    return _PACKAGES


def _function_hash_cached(func: Callable[..., Any]) -> str:
    code = getattr(func, "__code__", None)
    filename = code.co_filename if code is not None else ""
    key = (filename, getattr(func, "__qualname__", ""), _stat(filename) if filename else None)
    if key[2] is None or code is None:
        return function_hash(func)
    cached = _FUNCTIONS.get(key)
    if cached is None:
        cached = _FUNCTIONS[key] = function_hash(func)
    return cached


def _stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _file_info(
    path: str,
) -> tuple[tuple[int, int, int, int], str, tuple[tuple[int, str, tuple[str, ...]], ...]] | None:
    sig = _stat(path)
    if sig is None:
        return None
    cached = _FILES.get(path)
    if cached is not None and cached[0] == sig:
        return cached
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    entry = (sig, hashlib.sha256(data).hexdigest(), _imports(data))
    _FILES[path] = entry
    return entry


def _imports(data: bytes) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """``(level, module, names)`` of every import statement (also inside functions)."""
    import ast

    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError):
        return ()
    found: list[tuple[int, str, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((0, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names if alias.name != "*")
            found.append((node.level, node.module or "", names))
    return tuple(found)


def _import_root(module: str, filename: str) -> str | None:
    """The sys.path folder ``module`` was imported from (None when the path does not fit)."""
    if module == "__main__":
        return os.path.dirname(filename)
    parts = module.split(".")
    folder = os.path.dirname(filename)
    if os.path.basename(filename) == "__init__.py":
        parts = parts[:-1]
        if os.path.basename(folder) != module.split(".")[-1]:
            return None
        folder = os.path.dirname(folder)
    for part in reversed(parts[:-1]):
        if os.path.basename(folder) != part:
            return None
        folder = os.path.dirname(folder)
    return folder


def _installed(root: str) -> bool:
    parts = set(root.replace("\\", "/").split("/"))
    return bool(parts & {"site-packages", "dist-packages"})


def _find(root: str, name: str) -> str | None:
    base = os.path.join(root, *name.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _candidates(
    module: str, is_package: bool, level: int, target: str, names: Iterable[str]
) -> list[str]:
    if level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        if level - 1 > len(package):
            return []
        package = package[: len(package) - (level - 1)]
        full = ".".join([*package, *([target] if target else [])])
    else:
        full = target
    if not full:
        return []
    parts = full.split(".")
    result = [".".join(parts[: i + 1]) for i in range(len(parts))]
    result.extend(f"{full}.{name}" for name in names)
    return result


def _local_graph(module: str, filename: str) -> list[tuple[str, str]] | None:
    """``(module, file)`` of the step module and the project-local modules it imports."""
    root = _import_root(module, filename)
    if root is None:
        return None
    own_top = module.split(".", 1)[0]
    installed = _installed(root)
    seen = {module: filename}
    todo = [(module, filename)]
    while todo:
        name, path = todo.pop()
        info = _file_info(path)
        if info is None:
            continue
        is_package = os.path.basename(path) == "__init__.py"
        for level, target, names in info[2]:
            for candidate in _candidates(name, is_package, level, target, names):
                top = candidate.split(".", 1)[0]
                if candidate in seen or top in _SKIP_TOP or top.startswith("zenml_bridge_"):
                    continue
                if installed and top != own_top:
                    continue
                found = _find(root, candidate)
                if found is not None:
                    seen[candidate] = found
                    todo.append((candidate, found))
    return sorted(seen.items())


def _project_files(module: str, filename: str) -> list[tuple[str, str]] | None:
    root = _import_root(module, filename)
    if root is None:
        return None
    top = module.split(".", 1)[0]
    package = os.path.join(root, top)
    if module != "__main__" and os.path.isfile(os.path.join(package, "__init__.py")):
        start = package
    elif _installed(root):
        return [(module, filename)]
    else:
        start = root
    found: list[tuple[str, str]] = []
    for folder, dirs, files in os.walk(start):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in _SKIP_DIRS
            and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg"))
        )
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                found.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    return found


def _graph_hash(module: str, filename: str, policy: str) -> str:
    key = (module, filename, policy)
    cached = _GRAPHS.get(key)
    if cached is not None and all(_stat(path) == sig for path, sig in cached[1]):
        return cached[0]
    files = (
        _local_graph(module, filename) if policy == "module" else _project_files(module, filename)
    )
    if files is None:  # the module's name does not match its path: the file alone
        files = [(module, filename)]
    digest = hashlib.sha256(f"zenml-bridge code {policy}\n".encode())
    covered = []
    for name, path in files:
        info = _file_info(path)
        if info is None:
            continue
        digest.update(f"{name}\0{info[1]}\n".encode())
        covered.append((path, info[0]))
    result = digest.hexdigest()
    _GRAPHS[key] = (result, tuple(covered))
    return result


def clear_memo() -> None:
    """Forget every memoized file hash (tests; a long-lived process after a checkout)."""
    _FILES.clear()
    _GRAPHS.clear()
    _FUNCTIONS.clear()
    _STEP_FILES.clear()
