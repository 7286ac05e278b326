"""``MLflowModel``: an MLflow model folder (``MLmodel`` + files) passed between steps.

Holding the folder rather than a loaded Python object keeps artifacts safe to move around:
nothing of the model runs until a step calls :meth:`MLflowModel.load`, which hands the folder
to MLflow's own loader (scikit-learn models are saved with skops by MLflow 3, pyfunc models
with cloudpickle, which runs code on load: load only models you trust).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zenml_bridge.errors import BridgeError


@dataclass(frozen=True)
class MLflowModel:
    """A model in MLflow's format, in a local folder.

    Attributes:
        path: local folder that holds the ``MLmodel`` file.
        uri: where MLflow keeps it (``models:/m-...``, ``models:/name/3``), if it was logged.
        name: registered model name, for a registry version.
        version: registry version number, for a registry version.
        run_id: MLflow run that logged the model.

    Example:
        >>> model = MLflowModel.from_uri("models:/iris/1")  # doctest: +SKIP
        >>> model.load().predict(frame)  # doctest: +SKIP
    """

    path: str
    uri: str | None = None
    name: str | None = None
    version: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        if not (Path(self.path) / "MLmodel").is_file():
            raise BridgeError(
                f"MLflowModel path {self.path!r} has no MLmodel file, so it is not an MLflow "
                "model folder. Save the model with mlflow.<flavor>.save_model(model, path) or "
                "use MLflowModel.from_uri('models:/...')."
            )

    @property
    def flavors(self) -> list[str]:
        """Flavors the model can be loaded as, e.g. ``["python_function", "sklearn"]``."""
        from mlflow.models import Model

        return sorted(Model.load(self.path).flavors)

    @property
    def signature(self) -> Any:
        """The model's :class:`mlflow.models.ModelSignature`, or ``None``."""
        from mlflow.models import Model

        return Model.load(self.path).signature

    def load(self) -> Any:
        """Load as an MLflow pyfunc model (``.predict(data)``)."""
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(self.path)

    def load_native(self) -> Any:
        """Load in its own library's type (a scikit-learn estimator for the sklearn flavor)."""
        flavors = self.flavors
        if "sklearn" in flavors:
            import mlflow.sklearn

            return mlflow.sklearn.load_model(self.path)
        pyfunc = self.load()
        try:
            return pyfunc.unwrap_python_model()
        except Exception:
            return pyfunc.get_raw_model()

    def predict(self, data: Any) -> Any:
        """Shortcut for ``load().predict(data)``."""
        return self.load().predict(data)

    @classmethod
    def from_uri(cls, uri: str, *, tracking_uri: str | None = None, **fields: Any) -> MLflowModel:
        """Download a model from MLflow into a temporary folder (removed with the object)."""
        import mlflow.artifacts

        folder = tempfile.mkdtemp(prefix="zenml-bridge-mlflow-")
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=folder, tracking_uri=tracking_uri
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls.temporary(local, folder, uri=uri, **fields)

    @classmethod
    def temporary(cls, path: str, owned: str, **fields: Any) -> MLflowModel:
        """A model whose folder ``owned`` is deleted when the object is garbage collected."""
        model = cls(path=str(path), **fields)
        weakref.finalize(model, shutil.rmtree, owned, True)
        return model
