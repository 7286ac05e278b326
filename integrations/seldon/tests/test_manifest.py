"""SeldonDeployment manifests: snapshots, the CRD's shape, Kubernetes names, bad arguments."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import yaml
from zenml_bridge.errors import BridgeError

from zenml_bridge_seldon.manifest import (
    SeldonManifest,
    SeldonManifestMaterializer,
    build_manifest,
    k8s_name,
    validate_manifest,
)

GOLDEN = Path(__file__).parent / "golden"
URI = "s3://ml-artifacts/training/run-1/train/model"
SHA = "ab" * 32

CASES = {
    "sklearn_server": dict(name="iris", model_uri=URI, secret="s3-credentials"),
    "custom_image": dict(
        name="iris",
        model_uri=URI,
        model_sha256=SHA,
        image="registry.example.com/team/iris-serving:1.0",
        namespace="models",
        replicas=2,
        method="predict_proba",
        secret="s3-credentials",
        service_account="model-reader",
    ),
    "mlflow_server": dict(
        name="iris-mlflow",
        model_uri="gs://ml-artifacts/mlflow/1/models/m-123/artifacts",
        implementation="MLFLOW_SERVER",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_manifest_snapshot(case: str) -> None:
    text = build_manifest(**CASES[case]).to_yaml()  # type: ignore[arg-type]
    golden = GOLDEN / f"{case}.yaml"
    if os.environ.get("ZENML_BRIDGE_REGEN_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text(), f"regenerate with ZENML_BRIDGE_REGEN_GOLDEN=1 ({golden})"
    assert validate_manifest(yaml.safe_load(text)) == []


def test_prepackaged_answers_predict_and_reads_the_secret() -> None:
    unit = build_manifest(**CASES["sklearn_server"]).manifest["spec"]["predictors"][0]["graph"]  # type: ignore[arg-type]
    assert unit["implementation"] == "SKLEARN_SERVER"
    assert unit["modelUri"] == URI
    # SKLEARN_SERVER's default would be predict_proba: the local server answers predict.
    assert {"name": "method", "type": "STRING", "value": "predict"} in unit["parameters"]
    assert unit["envSecretRefName"] == "s3-credentials"


def test_custom_image_runs_the_seldon_python_model() -> None:
    predictor = build_manifest(**CASES["custom_image"]).manifest["spec"]["predictors"][0]  # type: ignore[arg-type]
    container = predictor["componentSpecs"][0]["spec"]["containers"][0]
    assert container["name"] == predictor["graph"]["name"]
    assert container["command"][:2] == [
        "seldon-core-microservice",
        "zenml_bridge_seldon.model.SeldonModel",
    ]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    params = {p["name"]: p["value"] for p in predictor["graph"]["parameters"]}
    assert params == {"model_uri": URI, "model_sha256": SHA, "method": "predict_proba"}


def test_local_uri_warns_that_a_cluster_cannot_read_it(tmp_path: Path) -> None:
    made = build_manifest(name="iris", model_uri=str(tmp_path))
    assert len(made.warnings) == 1 and "cannot read it" in made.warnings[0]
    assert build_manifest(**CASES["sklearn_server"]).warnings == ()  # type: ignore[arg-type]


def test_bad_arguments_are_reported_together() -> None:
    with pytest.raises(BridgeError) as info:
        build_manifest(
            name="Iris_Model",
            model_uri=URI,
            implementation="TORCH_SERVER",
            method="transform",
            replicas=0,
            secret="my_secret",
        )
    message = str(info.value)
    for part in (
        "implementation 'TORCH_SERVER' is not one of auto, custom, SKLEARN_SERVER, MLFLOW_SERVER",
        "method 'transform' is not one of predict, predict_proba, decision_function",
        "replicas must be a whole number >= 1, not 0",
        "name 'Iris_Model' is not a valid Kubernetes name",
        "secret 'my_secret' is not a valid Kubernetes name",
        "Fix these arguments of seldon_manifest().",
    ):
        assert part in message


def test_image_with_a_prepackaged_server_is_refused() -> None:
    with pytest.raises(BridgeError, match=re.escape("SKLEARN_SERVER runs Seldon's own image")):
        build_manifest(name="iris", model_uri=URI, image="x:1", implementation="SKLEARN_SERVER")
    with pytest.raises(BridgeError, match=re.escape("implementation 'custom' needs image=")):
        build_manifest(name="iris", model_uri=URI, implementation="custom")


VALID = build_manifest(**CASES["custom_image"]).manifest  # type: ignore[arg-type]


def _broken(path: str, value: object) -> dict:
    """VALID with the dotted ``path`` set to ``value`` (``None`` deletes the key)."""
    manifest = copy.deepcopy(dict(VALID))
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    target = manifest
    for key in keys[:-1]:
        target = target[key]
    if value is None:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return manifest


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("apiVersion", "machinelearning.seldon.io/v1alpha2", "apiVersion must be"),
        ("kind", "Deployment", "kind must be SeldonDeployment"),
        ("metadata.name", None, "metadata.name is required"),
        ("metadata.name", "Iris", "metadata.name 'Iris' is not a DNS-1123 label"),
        ("metadata.name", "a" * 64, "it has 64 characters (at most 63)"),
        ("metadata.name", "-iris", "starting and ending alphanumeric"),
        ("metadata.namespace", "my_ns", "metadata.namespace 'my_ns'"),
        ("spec.predictors", [], "spec.predictors must list at least one predictor"),
        ("spec.protocol", "grpc", "spec.protocol 'grpc' is not one of"),
        ("spec.predictors.0.name", None, "spec.predictors[0].name is required"),
        ("spec.predictors.0.graph", None, "spec.predictors[0].graph is required"),
        ("spec.predictors.0.graph.name", None, "spec.predictors[0].graph.name is required"),
        ("spec.predictors.0.graph.type", "PREDICTOR", "graph.type 'PREDICTOR' is not one of"),
        ("spec.predictors.0.graph.endpoint", {"type": "HTTP"}, "must be REST or GRPC"),
        ("spec.predictors.0.graph.endpoint", "REST", "graph.endpoint must be a mapping"),
        ("spec.predictors.0.graph.children", ["x"], "graph.children[0] must be a mapping"),
        ("spec.predictors.0.componentSpecs.0.spec", "pod", "spec.containers must list"),
        (
            "spec.predictors.0.graph.parameters",
            [{"name": "n", "value": 3, "type": "INTEGER"}],
            "parameters[0].type 'INTEGER' is not one of INT",
        ),
        (
            "spec.predictors.0.graph.parameters",
            [{"name": "n", "type": "INT"}],
            "parameters[0].value is required",
        ),
        ("spec.predictors.0.graph.name", "classifier", "no container named 'classifier'"),
        (
            "spec.predictors.0.componentSpecs.0.spec.containers.0.image",
            None,
            "container 'model' has no image",
        ),
        (
            "spec.predictors.0.componentSpecs.0.spec.containers.0.name",
            "Model",
            "containers[0].name 'Model' is not a DNS-1123 label",
        ),
    ],
)
def test_validation_names_each_problem(path: str, value: object, problem: str) -> None:
    problems = validate_manifest(_broken(path, value))
    assert any(problem in p for p in problems), problems


def test_prepackaged_server_needs_a_model_uri() -> None:
    manifest = copy.deepcopy(dict(build_manifest(**CASES["sklearn_server"]).manifest))  # type: ignore[arg-type]
    del manifest["spec"]["predictors"][0]["graph"]["modelUri"]
    assert validate_manifest(manifest) == [
        "spec.predictors[0].graph.modelUri is required for the prepackaged SKLEARN_SERVER"
    ]


def test_duplicate_predictor_names() -> None:
    manifest = copy.deepcopy(dict(VALID))
    manifest["spec"]["predictors"].append(copy.deepcopy(manifest["spec"]["predictors"][0]))
    assert validate_manifest(manifest) == [
        "spec.predictors[1].name 'default' is used by another predictor"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("training", "training"),
        ("Training_Pipeline.v2", "training-pipeline-v2"),
        ("__", "model"),
        ("x" * 80, "x" * 54 + "-" + __import__("hashlib").sha256(b"x" * 80).hexdigest()[:8]),
    ],
)
def test_k8s_name(text: str, expected: str) -> None:
    assert k8s_name(text) == expected
    assert validate_manifest(build_manifest(name=k8s_name(text), model_uri=URI).manifest) == []


def test_materializer_round_trip_and_visualization(tmp_path: Path) -> None:
    from zenml_bridge.stores.artifacts import filesystem_for

    value = build_manifest(**CASES["sklearn_server"])  # type: ignore[arg-type]
    materializer = SeldonManifestMaterializer()
    fs = filesystem_for(str(tmp_path))
    materializer.save(value, str(tmp_path / "out"), fs)
    loaded = materializer.load(str(tmp_path / "out"), fs)
    assert isinstance(loaded, SeldonManifest)
    assert loaded.to_yaml() == value.to_yaml()
    assert dict(materializer.visualizations(value)) == {"seldondeployment.yaml": value.to_yaml()}


def test_manifest_step_names_the_model_artifact(home: Path) -> None:
    import seldon_pipelines as sp
    from zenml_bridge.runtime import run_pipeline

    run = run_pipeline(
        sp.manifest_iris, {"image": "registry.example.com/iris:1", "secret": "s3-credentials"}
    )
    model = run.steps["train"].outputs["model"]
    artifact = run.steps["seldon_manifest"].outputs["manifest"]
    made = artifact.load()
    assert isinstance(made, SeldonManifest)
    assert validate_manifest(made.manifest) == []
    assert made.name == "manifest-iris"
    params = {
        p["name"]: p["value"] for p in made.manifest["spec"]["predictors"][0]["graph"]["parameters"]
    }
    assert params == {"model_uri": model.uri, "model_sha256": model.sha256, "method": "predict"}
    assert (Path(artifact.uri) / "seldondeployment.yaml").read_text() == made.to_yaml()
    # The YAML is also the artifact's visualization (stored with it, covered by its hash).
    assert artifact.visualizations() == {"seldondeployment.yaml": made.to_yaml().encode()}
    from zenml_bridge.runtime.records import load_run

    metadata = load_run(run.run_id).steps["seldon_manifest"].metadata
    assert metadata["seldon_model_uri"] == model.uri
    assert "cannot read it" in metadata["seldon_warnings"][0]  # a local artifact store


def test_manifest_step_refuses_what_it_cannot_serve(home: Path) -> None:
    import seldon_pipelines as sp
    from zenml_bridge import pipeline
    from zenml_bridge.runtime import run_pipeline

    from zenml_bridge_seldon.steps import seldon_manifest

    @pipeline
    def dict_manifest() -> None:
        seldon_manifest(sp.not_a_model())

    with pytest.raises(
        BridgeError, match=re.escape("Seldon cannot serve a model of type builtins.dict")
    ):
        run_pipeline(dict_manifest)
