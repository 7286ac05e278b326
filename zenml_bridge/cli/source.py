"""Loading a pipeline from a SRC: ``package.module:name`` or ``path/to/file.py:name``."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from zenml_bridge.dsl import Pipeline
from zenml_bridge.errors import BridgeError, did_you_mean

SRC_FORMS = "'package.module:pipeline_name' or 'path/to/file.py:pipeline_name'"


def import_root(path: Path) -> tuple[Path, str]:
    """The sys.path root and dotted module name of a Python file, honouring packages.

    ``/p/examples/quickstart/pipeline.py`` (no ``__init__.py`` around) -> root
    ``/p/examples/quickstart``, module ``pipeline``.
    """
    path = path.resolve()
    parts = [path.stem] if path.name != "__init__.py" else []
    folder = path.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return folder, ".".join(parts)


def load_object(src: str) -> Any:
    """Import what SRC names; a clear error when it does not import or names nothing."""
    module_part, sep, attr = src.rpartition(":")
    if not sep or not module_part or not attr:
        raise BridgeError(f"SRC {src!r} does not name an object. Write it as {SRC_FORMS}.")
    if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
        path = Path(module_part)
        if not path.is_file():
            raise BridgeError(
                f"SRC {src!r}: the file '{module_part}' does not exist. Check the path "
                f"(relative to {Path.cwd()}) or write SRC as {SRC_FORMS}."
            )
        root, module_name = import_root(path)
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
    else:
        module_name = module_part
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise BridgeError(
                f"SRC {src!r}: no module named '{module_name}'. Run from the folder that holds "
                f"it, install its package, or write SRC as {SRC_FORMS}."
            ) from None
        raise _import_failure(src, module_name) from None
    except BridgeError:
        raise
    except Exception:
        raise _import_failure(src, module_name) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        pipelines = [name for name, value in vars(module).items() if isinstance(value, Pipeline)]
        hint = did_you_mean(attr, pipelines or list(vars(module)))
        available = f" Pipelines there: {', '.join(pipelines)}." if pipelines else ""
        raise BridgeError(
            f"SRC {src!r}: module '{module_name}' has no attribute '{attr}'.{hint}{available}"
        ) from None


def _import_failure(src: str, module_name: str) -> BridgeError:
    frames = traceback.format_exc(limit=-3)
    return BridgeError(
        f"SRC {src!r}: importing '{module_name}' raised an error in your code:\n{frames.rstrip()}"
    )


def load_pipeline(src: str) -> Pipeline:
    """The :class:`Pipeline` that SRC names."""
    value = load_object(src)
    if not isinstance(value, Pipeline):
        raise BridgeError(
            f"SRC {src!r} names a {type(value).__name__}, not a @pipeline. Point it at a "
            "function decorated with @pipeline."
        )
    return value
