"""Standard steps: log a model, register it, load a registered version; the model materializer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
import mlflow_pipelines as mp
import pytest
from mlflow import MlflowClient
from mlflow.models import Model
from zenml_bridge import pipeline
from zenml_bridge.errors import BridgeError
from zenml_bridge.materializers import registry
from zenml_bridge.runtime import run_pipeline

from zenml_bridge_mlflow.materializer import MLflowModelMaterializer
from zenml_bridge_mlflow.model import MLflowModel
from zenml_bridge_mlflow.steps import load_registered_model


@pytest.mark.parametrize("where", ["sqlite", "server"])
def test_log_register_and_load_a_sklearn_model(
    where: str, request: pytest.FixtureRequest, make_settings: Any
) -> None:
    uri = (
        request.getfixturevalue("sqlite_uri")
        if where == "sqlite"
        else request.getfixturevalue("mlflow_server").url
    )
    name = f"zb-model-{where}"
    run = run_pipeline(mp.registry, {"rows": 60, "model_name": name}, settings=make_settings(uri))
    client = MlflowClient(uri)

    # the registry has the version, with our alias and tags
    version = client.get_model_version_by_alias(name, "champion")
    assert run.steps["register_model"].outputs["model_version"].load() == {
        "name": name,
        "version": str(version.version),
        "uri": f"models:/{name}/{version.version}",
        "alias": "champion",
        "source": run.steps["log_model"].outputs["mlflow_model"].load().uri,
        "run_id": version.run_id,
    }
    assert version.tags["zenml_bridge.run_id"] == run.run_id
    assert version.tags["zenml_bridge.pipeline"] == "registry"
    assert version.tags["team"] == "ml"

    # the model was logged into the log_model step's own run, with signature and example
    step_run = client.get_run(version.run_id)
    assert step_run.data.tags["zenml_bridge.step"] == "log_model"
    assert step_run.data.tags["mlflow.parentRunId"] == run.links["mlflow.run_id"]
    logged: MLflowModel = run.steps["log_model"].outputs["mlflow_model"].load()
    meta = Model.load(logged.path)
    assert set(meta.flavors) == {"python_function", "sklearn"}
    assert meta.flavors["sklearn"]["serialization_format"] == "skops"
    assert [c.name for c in meta.signature.inputs.inputs] == ["x1", "x2"]
    example = json.loads((Path(logged.path) / "input_example.json").read_text())
    assert example["columns"] == ["x1", "x2"] and len(example["data"]) == 5

    # the loaded registered version travelled through our materializer and predicts
    served: MLflowModel = run.steps["load_registered_model"].outputs["model"].load()
    assert (served.name, served.version) == (name, str(version.version))
    assert run.steps["load_registered_model"].outputs["model"].materializer == "mlflow.model"
    trained = run.steps["train"].outputs["model"].load()
    frame = run.steps["load"].outputs["output"].load().drop(columns=["y"])
    assert run.steps["predict"].outputs["output"].load() == [int(v) for v in trained.predict(frame)]
    assert type(served.load_native()).__name__ == "LogisticRegression"

    # a second run registers version 2 and moves the alias
    again = run_pipeline(mp.registry, {"rows": 61, "model_name": name}, settings=make_settings(uri))
    assert again.steps["register_model"].outputs["model_version"].load()["version"] == str(
        int(version.version) + 1
    )
    assert str(client.get_model_version_by_alias(name, "champion").version) == str(
        int(version.version) + 1
    )


def test_log_a_pyfunc_model(sqlite_uri: str, make_settings: Any) -> None:
    run = run_pipeline(mp.pyfunc_model, {}, settings=make_settings(sqlite_uri))
    assert run.steps["predict_pyfunc"].outputs["output"].load() == [2.0, 4.0, 6.0]
    logged: MLflowModel = run.steps["log_model"].outputs["mlflow_model"].load()
    assert logged.flavors == ["python_function"]
    assert logged.signature is not None  # inferred from the input example
    assert logged.uri.startswith("models:/")


def test_standard_steps_need_the_tracker(no_tracker_settings: Any) -> None:
    with pytest.raises(BridgeError, match=r"Step 'log_model' of pipeline 'registry' has no MLflow"):
        run_pipeline(mp.registry, {"rows": 30}, settings=no_tracker_settings)


def test_materializer_round_trip_local_and_remote(tmp_path: Path) -> None:
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    folder = tmp_path / "saved"
    mlflow.sklearn.save_model(LinearRegression().fit([[1.0], [2.0]], [2.0, 4.0]), str(folder))
    model = MLflowModel(path=str(folder), uri="models:/m-1", name="n", version="3", run_id="r")
    assert registry.select(model).name == "mlflow.model"  # found through the entry point
    assert isinstance(registry.get("mlflow.model"), MLflowModelMaterializer)

    for fs, root in (
        (fsspec.filesystem("file"), str(tmp_path / "artifact")),
        (fsspec.filesystem("memory"), "/zb-test/artifact"),
    ):
        fs.makedirs(root, exist_ok=True)
        MLflowModelMaterializer().save(model, root, fs)
        back = MLflowModelMaterializer().load(root, fs)
        assert (back.uri, back.name, back.version, back.run_id) == ("models:/m-1", "n", "3", "r")
        assert back.path != model.path
        assert back.load_native().predict([[3.0]])[0] == pytest.approx(6.0)
    with pytest.raises(BridgeError, match="has no MLmodel file"):
        MLflowModel(path=str(tmp_path))


@pipeline
def load_missing(name: str = "no-such-model") -> None:
    load_registered_model(name=name, alias="champion")


def test_loading_a_missing_registered_model_says_what_to_do(
    sqlite_uri: str, make_settings: Any
) -> None:
    with pytest.raises(
        BridgeError,
        match=r"Registered model 'no-such-model' alias 'champion' not found at sqlite:///.*"
        r"register a version with register_model",
    ):
        run_pipeline(load_missing, {}, settings=make_settings(sqlite_uri))
