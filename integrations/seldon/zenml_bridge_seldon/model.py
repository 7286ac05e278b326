"""The Seldon Python model: the class seldon-core's wrapper serves, locally and in a cluster.

Seldon Core's Python wrapper serves any class with a ``predict(X, features_names)`` method:
it builds the object from the graph's ``parameters`` (strings here), calls ``load()`` once and
then ``predict`` for every ``POST /api/v1.0/predictions``. :class:`SeldonModel` is that class
for a model stored by zenml-bridge: it reads the artifact folder (``model.joblib``, written by
the scikit-learn materializer) from any fsspec URL, verifying the artifact's recorded sha256 on
the very bytes it unpickles when one is given.

Example (the same class the local deployer and a custom image run)::

    seldon-core-microservice zenml_bridge_seldon.model.SeldonModel --service-type MODEL
"""

from __future__ import annotations

from typing import Any

from zenml_bridge.errors import BridgeError

#: The file the scikit-learn materializer writes (and Seldon's SKLEARN_SERVER reads).
MODEL_FILE = "model.joblib"
#: Import path of :class:`SeldonModel`, as seldon-core-microservice takes it.
INTERFACE_NAME = "zenml_bridge_seldon.model.SeldonModel"
#: Methods a served model may answer ``predict`` with (Seldon's SKLEARN_SERVER has the same).
METHODS = ("predict", "predict_proba", "decision_function")


def check_servable(model: Any, method: str = "predict") -> None:
    """Refuse a model this integration cannot serve, with what to do instead.

    Raises:
        BridgeError: the model is not a scikit-learn estimator, or lacks ``method``.
    """
    if method not in METHODS:
        raise BridgeError(
            f"Seldon method {method!r} is not supported. Use one of: {', '.join(METHODS)}."
        )
    mro = {f"{c.__module__}.{c.__qualname__}" for c in type(model).__mro__}
    if "sklearn.base.BaseEstimator" not in mro:
        kind = f"{type(model).__module__}.{type(model).__qualname__}"
        raise BridgeError(
            f"Seldon cannot serve a model of type {kind}: the Seldon steps serve scikit-learn "
            "estimators (SKLEARN_SERVER in a cluster, seldon-core's Python wrapper locally). "
            "Return a scikit-learn estimator from the training step; another kind of model "
            "needs an image with a Seldon Python class of its own and a SeldonDeployment "
            "written for that image (an MLflow model: implementation='MLFLOW_SERVER')."
        )
    if not callable(getattr(model, method, None)):
        raise BridgeError(
            f"Seldon cannot serve the {type(model).__name__} model with method {method!r}: "
            f"it has no {method}() (is it fitted, and does the estimator offer {method}?). "
            f"Choose another method ({', '.join(m for m in METHODS if m != method)})."
        )


def load_model(model_uri: str, model_sha256: str = "") -> Any:
    """The estimator in the artifact folder ``model_uri`` (verified when a sha256 is given)."""
    from zenml_bridge.materializers.sklearn_models import SklearnMaterializer
    from zenml_bridge.stores.artifacts import ArtifactStore, filesystem_for

    materializer = SklearnMaterializer()
    if model_sha256:
        # Hash and unpickle the same bytes: a file swapped in the store is refused first.
        files = ArtifactStore(model_uri).read_files(model_uri, model_sha256)
        if MODEL_FILE not in files:
            raise BridgeError(
                f"The artifact {model_uri} has no {MODEL_FILE}: it is not a scikit-learn model "
                "stored by zenml-bridge. Pass the folder of a model artifact."
            )
        return materializer.load_files(files)
    fs = filesystem_for(model_uri)
    folder = model_uri.removeprefix("file://")
    return materializer.load(folder, fs)


class SeldonModel:
    """A zenml-bridge model artifact as a Seldon Python model.

    Args:
        model_uri: the artifact folder (local path or fsspec URL) holding ``model.joblib``.
        model_sha256: the artifact's recorded content hash; checked before unpickling.
        method: the estimator method ``predict`` answers with (``predict`` by default).
    """

    def __init__(self, model_uri: str, model_sha256: str = "", method: str = "predict") -> None:
        self.model_uri = model_uri
        self.model_sha256 = model_sha256
        self.method = method
        self.model: Any = None

    def load(self) -> None:
        """Read the estimator (seldon-core calls this once before serving)."""
        if self.model is None:
            model = load_model(self.model_uri, self.model_sha256)
            check_servable(model, self.method)
            self.model = model

    def predict(self, X: Any, features_names: Any = None, **kwargs: Any) -> Any:
        """The estimator's answer for the rows ``X`` (an array, as seldon-core decodes it)."""
        self.load()
        return getattr(self.model, self.method)(X)

    def init_metadata(self) -> dict[str, Any]:
        """Seldon's ``/api/v1.0/metadata``: where the model comes from."""
        return {"name": "zenml-bridge-model", "versions": [self.model_sha256 or "unverified"]}
