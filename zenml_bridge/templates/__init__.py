"""Templates shipped with the package: generated-file templates (``airflow/``) and the project
templates of ``zenml-bridge init --template NAME`` (``projects/<name>/``).

A project template is a folder of files copied as they are; its ``README.md`` starts with
``# <name>: <one-line description>``, which ``init --template list`` shows.
"""

from __future__ import annotations

import os
import tempfile
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from zenml_bridge.errors import BridgeError

_SKIP = ("__pycache__", ".pyc", ".DS_Store")


def _root() -> Traversable:
    return resources.files(__name__).joinpath("projects")


def template_names() -> list[str]:
    """The names of the project templates, sorted."""
    return sorted(
        entry.name
        for entry in _root().iterdir()
        if entry.is_dir() and not entry.name.startswith(("_", "."))
    )


def describe(name: str) -> str:
    """The one-line description from the first line of the template's README.md."""
    readme = _template(name).joinpath("README.md")
    if not readme.is_file():
        return ""
    first = (readme.read_text(encoding="utf-8").splitlines() or [""])[0]
    return first.lstrip("# ").partition(":")[2].strip() or first.lstrip("# ")


def _template(name: str) -> Traversable:
    names = template_names()
    if name not in names:
        from zenml_bridge.ir.errors import did_you_mean

        raise BridgeError(
            f"There is no project template {name!r}."
            + did_you_mean(name, names)
            + f" Templates: {', '.join(names)} (`zenml-bridge init --template list`)."
        )
    return _root().joinpath(name)


def _files(folder: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name in _SKIP or entry.name.endswith(_SKIP):
            continue
        if entry.is_dir():
            found.extend(_files(entry, f"{prefix}{entry.name}/"))
        else:
            found.append((prefix + entry.name, entry))
    return found


def copy_template(name: str, target: Path, *, force: bool = False) -> list[str]:
    """Copy the project template ``name`` into ``target``; returns the relative paths written.

    Nothing is written when any of its files already exists in ``target`` (unless ``force``):
    the BridgeError names them. Each file is written to a temporary name and renamed.

    Example:
        >>> copy_template("minimal", Path("hello"))  # doctest: +SKIP
        ['README.md', 'pipeline.py', 'run.yaml']
    """
    files = _files(_template(name))
    target = target.expanduser()
    if target.exists() and not target.is_dir():
        raise BridgeError(f"{target} is a file, not a folder. Give a folder for the project.")
    clashes = [rel for rel, _ in files if (target / rel).exists()]
    if clashes and not force:
        raise BridgeError(
            f"Template '{name}' would overwrite {', '.join(clashes)} in {target.resolve()}. "
            "Choose an empty folder, move those files away, or pass --force to overwrite them."
        )
    tmp: str | None = None
    try:
        for rel, source in files:
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".zb-template-", dir=path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(source.read_bytes())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
            tmp = None
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise BridgeError(
            f"Cannot write template '{name}' into {target} ({exc.strerror}). "
            "Choose a folder you can write to."
        ) from None
    return [rel for rel, _ in files]
