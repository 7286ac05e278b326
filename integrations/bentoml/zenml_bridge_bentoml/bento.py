"""Save a model into BentoML's model store and build a Bento around it.

BentoML keeps models and Bentos under ``BENTOML_HOME`` (default ``~/bentoml``); the ``home``
option of the ``bentoml`` model deployer chooses another folder for a stack, used here and by
the server the deployer starts.

Example:
    >>> tag = build_bento(model, name="iris")        # doctest: +SKIP
    >>> tag
    'iris:5puctnhmb2jy4ax4'
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from zenml_bridge.errors import BridgeError

#: BentoML's rule for model and Bento names (a Kubernetes-style name, at most 63 characters).
NAME_RE = re.compile(r"^[a-z0-9]([-._a-z0-9]{0,61}[a-z0-9])?$")
#: File name of the default service inside a Bento, and of its data file.
SERVICE_FILE = "zb_bento_service.py"
CONFIG_FILE = "zb_service.json"


def check_name(name: str, what: str = "Bento name") -> str:
    """``name`` when BentoML accepts it, else a BridgeError saying how to fix it."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BridgeError(
            f"{what} {name!r} is not valid for BentoML: use 1-63 lowercase letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit (e.g. 'iris-classifier')."
        )
    return name


def is_sklearn_model(model: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:
        return False
    return isinstance(model, BaseEstimator) and callable(getattr(model, "predict", None))


@contextlib.contextmanager
def bentoml_home(home: str | os.PathLike[str] | None) -> Iterator[None]:
    """Use ``home`` as BentoML's store folder inside the block (no change when None)."""
    if home is None:
        yield
        return
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    root = Path(home).expanduser().resolve()
    folders = {name: root / name for name in ("bentos", "models", "envs", "tmp")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    c = BentoMLContainer
    with contextlib.ExitStack() as stack:
        stack.enter_context(c.bentoml_home.patch(str(root)))
        stack.enter_context(c.bento_store_dir.patch(str(folders["bentos"])))
        stack.enter_context(c.model_store_dir.patch(str(folders["models"])))
        stack.enter_context(c.env_store_dir.patch(str(folders["envs"])))
        stack.enter_context(c.tmp_bento_store_dir.patch(str(folders["tmp"])))
        stack.enter_context(c.bento_store.patch(BentoStore(str(folders["bentos"]))))
        stack.enter_context(c.model_store.patch(ModelStore(str(folders["models"]))))
        stack.enter_context(c.tmp_bento_store.patch(BentoStore(str(folders["tmp"]))))
        yield


def _packages() -> list[str]:
    """The serving packages, pinned to this environment's versions."""
    pins = []
    for dist in ("scikit-learn", "pandas", "numpy"):
        try:
            pins.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return pins


def _user_service(service: str) -> tuple[Path, str, str]:
    """(folder, "module:Class", file name) of ``path/to/service.py:ClassName``."""
    path_text, sep, cls = service.rpartition(":")
    if not sep or not path_text or not cls.isidentifier():
        raise BridgeError(
            f"service={service!r}: give the service file and its class as "
            "'path/to/service.py:ClassName' (the class decorated with @bentoml.service)."
        )
    path = Path(path_text).expanduser()
    if path.suffix != ".py" or not path.is_file():
        raise BridgeError(
            f"service={service!r}: {path} is not a Python file. Give the path of the file that "
            "defines the BentoML service, e.g. 'serving/service.py:IrisService'."
        )
    if not path.stem.isidentifier():
        raise BridgeError(
            f"service={service!r}: the file name {path.name!r} is not importable as a module. "
            "Rename it to a Python identifier (e.g. service.py)."
        )
    return path.resolve().parent, f"{path.stem}:{cls}", path.name


def save_model(model: Any, name: str, labels: Mapping[str, str]) -> str:
    """Save ``model`` in the BentoML model store; returns its tag ``name:version``."""
    import bentoml

    if is_sklearn_model(model):
        saved = bentoml.sklearn.save_model(name, model, labels=dict(labels))
    else:
        saved = bentoml.picklable_model.save_model(name, model, labels=dict(labels))
    return str(saved.tag)


def build_bento(
    model: Any,
    *,
    name: str,
    service: str | None = None,
    labels: Mapping[str, str] | None = None,
    home: str | os.PathLike[str] | None = None,
) -> str:
    """Save ``model`` and build a Bento serving it; returns the Bento tag.

    Args:
        model: a scikit-learn estimator (default service), or any picklable model when
            ``service`` is given.
        name: the model's and the Bento's name in BentoML's stores.
        service: ``path/to/service.py:ClassName``, a BentoML service that loads the model as
            ``bentoml.models.BentoModel("NAME:latest")``; every ``*.py`` file of its folder is
            packed. None: the default service for scikit-learn models (``POST /predict``).
        labels: BentoML labels for the model and the Bento.
        home: BentoML's store folder (default ``BENTOML_HOME`` or ``~/bentoml``).

    Raises:
        BridgeError: an invalid name or service, or a model the default service cannot serve.
    """
    check_name(name)
    if service is None and not is_sklearn_model(model):
        raise BridgeError(
            f"bento_build: the default BentoML service serves scikit-learn estimators with "
            f"predict(); this model is a {type(model).__module__}.{type(model).__qualname__}. "
            "Pass service='path/to/service.py:ClassName', a BentoML service that loads the model "
            f"as bentoml.models.BentoModel('{name}:latest'), or train a scikit-learn model."
        )
    user = _user_service(service) if service is not None else None
    tags = {str(k): str(v) for k, v in (labels or {}).items()}
    import bentoml

    with bentoml_home(home):
        model_tag = save_model(model, name, tags)
        with tempfile.TemporaryDirectory(prefix="zb-bento-") as scratch:
            if user is None:
                ctx = Path(scratch)
                shutil.copyfile(Path(__file__).with_name("default_service.py"), ctx / SERVICE_FILE)
                data = {"service": name, "model_tag": model_tag}
                (ctx / CONFIG_FILE).write_text(json.dumps(data), encoding="utf-8")
                target = f"{Path(SERVICE_FILE).stem}:ZenmlBridgeModel"
                include = [SERVICE_FILE, CONFIG_FILE]
            else:
                ctx, target, _ = user
                include = ["*.py"]
            # BentoML imports the service module by name: a module of that name imported by an
            # earlier build in this process (another model's config) must not be reused.
            sys.modules.pop(target.split(":", 1)[0], None)
            bento = bentoml.bentos.build(
                target,
                name=name,
                labels=tags,
                include=include,
                python={"packages": _packages(), "lock_packages": False},
                models=[model_tag],
                build_ctx=str(ctx),
            )
    return str(bento.tag)
