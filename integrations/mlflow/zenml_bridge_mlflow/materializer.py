"""Materializer for :class:`~zenml_bridge_mlflow.model.MLflowModel` values.

Artifact folder layout::

    model/...             the MLflow model folder as MLflow wrote it (MLmodel, model.skops, ...)
    mlflow_model.json     where it came from: MLflow URI, registry name/version, run id

Loading returns an :class:`MLflowModel` pointing at the files (downloaded to a temporary
folder when the artifact store is remote); no model code runs until ``.load()``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from zenml_bridge.materializers.base import Materializer

from zenml_bridge_mlflow.model import MLflowModel

_META = "mlflow_model.json"
_FIELDS = ("uri", "name", "version", "run_id")


class MLflowModelMaterializer(Materializer):
    """Stores an MLflow model folder as an artifact.

    Example:
        >>> MLflowModelMaterializer.name
        'mlflow.model'
    """

    name: ClassVar[str] = "mlflow.model"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = ("zenml_bridge_mlflow.model.MLflowModel",)

    def save(self, value: Any, folder: str, fs: Any) -> None:
        source = Path(value.path)
        target = folder.rstrip("/") + "/model"
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            relative = file.relative_to(source).as_posix()
            remote = f"{target}/{relative}"
            fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(file), remote)
        meta = {key: getattr(value, key) for key in _FIELDS}
        with fs.open(folder.rstrip("/") + "/" + _META, "w") as handle:
            handle.write(json.dumps(meta, sort_keys=True, indent=1))

    def load(self, folder: str, fs: Any) -> Any:
        root = folder.rstrip("/")
        with fs.open(f"{root}/{_META}", "r") as handle:
            meta = json.loads(handle.read())
        fields = {key: meta.get(key) for key in _FIELDS}
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if protocol in ("file", "local") and os.path.isdir(f"{root}/model"):
            return MLflowModel(path=f"{root}/model", **fields)
        owned = tempfile.mkdtemp(prefix="zenml-bridge-mlflow-")
        local = os.path.join(owned, "model")
        fs.get(f"{root}/model", local, recursive=True)
        return MLflowModel.temporary(local, owned, **fields)
