"""The Seldon Python model as a cluster builds it, and what the deployer refuses up front."""

from __future__ import annotations

import re
from pathlib import Path

import joblib
import numpy
import pytest
import seldon_pipelines as sp
from seldon_core.microservice import parse_parameters
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from zenml_bridge.errors import BridgeError

from zenml_bridge_seldon.deployer import SeldonModelDeployer
from zenml_bridge_seldon.manifest import build_manifest
from zenml_bridge_seldon.model import SeldonModel, check_servable


@pytest.fixture
def model_folder(tmp_path: Path) -> tuple[Path, LogisticRegression]:
    features, target = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(features, target)
    folder = tmp_path / "model"
    folder.mkdir()
    joblib.dump(model, folder / "model.joblib")
    return folder, model


def test_custom_manifest_parameters_build_the_model_as_seldon_core_does(
    model_folder: tuple[Path, LogisticRegression],
) -> None:
    """What the operator hands the container (the graph's parameters) makes a working model."""
    folder, model = model_folder
    made = build_manifest(
        name="iris", model_uri=str(folder), image="me/iris:1", method="predict_proba"
    )
    container = made.manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    interface = container["containers"][0]["command"][1]
    module, _, cls = interface.rpartition(".")
    user_class = getattr(__import__(module, fromlist=[cls]), cls)
    assert user_class is SeldonModel
    # seldon-core-microservice parses PREDICTIVE_UNIT_PARAMETERS this way, then calls load().
    parameters = parse_parameters(made.manifest["spec"]["predictors"][0]["graph"]["parameters"])
    served = user_class(**parameters)
    served.load()
    rows = numpy.array(sp.iris_rows())
    numpy.testing.assert_array_equal(served.predict(rows, []), model.predict_proba(rows))


def test_a_wrong_hash_is_refused_before_loading(
    model_folder: tuple[Path, LogisticRegression],
) -> None:
    folder, _ = model_folder
    with pytest.raises(BridgeError, match="content hash|corrupt"):
        SeldonModel(str(folder), model_sha256="0" * 64).load()


@pytest.mark.parametrize(
    ("model", "method", "message"),
    [
        ({"w": 1}, "predict", "Seldon cannot serve a model of type builtins.dict"),
        (KMeans(n_clusters=2), "predict_proba", "it has no predict_proba()"),
        (LogisticRegression(), "transform", "Seldon method 'transform' is not supported"),
    ],
)
def test_check_servable(model: object, method: str, message: str) -> None:
    with pytest.raises(BridgeError, match=re.escape(message)):
        check_servable(model, method)


def test_deployer_refuses_other_artifacts_before_starting_anything(home: Path) -> None:
    artifact = {"id": "a1", "uri": str(home), "sha256": "x", "materializer": "builtins.json"}
    with pytest.raises(BridgeError, match=re.escape("stored by the 'builtins.json' materializer")):
        SeldonModelDeployer().deploy(artifact, "json", {})
    with pytest.raises(BridgeError, match=re.escape("needs a stored model artifact, got int")):
        SeldonModelDeployer().deploy(42, "int", {})
    artifact["materializer"] = "sklearn.joblib"
    with pytest.raises(BridgeError, match=re.escape("Seldon method 'predict_log' is not")):
        SeldonModelDeployer().deploy(artifact, "x", {"method": "predict_log"})
    assert SeldonModelDeployer().list() == []
