"""Pipelines the Seldon tests run (a module, so that step processes can import the steps)."""

from __future__ import annotations

from typing import Annotated

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from zenml_bridge import StopPipeline, pipeline, step

from zenml_bridge_seldon.steps import seldon_deploy, seldon_manifest


def iris_rows() -> list[list[float]]:
    features, _ = load_iris(return_X_y=True)
    return [list(map(float, row)) for row in features[::10]]


@step
def train(max_iter: int = 500) -> Annotated[LogisticRegression, "model"]:
    features, target = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=max_iter).fit(features, target)


@step
def not_a_model() -> Annotated[dict, "model"]:
    return {"weights": [0.1, 0.2]}


@step
def evaluate(model: LogisticRegression, bar: float = 0.5) -> Annotated[float, "accuracy"]:
    features, target = load_iris(return_X_y=True)
    accuracy = float(model.score(features, target))
    if accuracy < bar:
        raise StopPipeline(f"accuracy {accuracy:.3f} is below the bar {bar}", outputs=accuracy)
    return accuracy


@pipeline
def serve_iris(method: str = "predict", bar: float = 0.5) -> None:
    model = train()
    accuracy = evaluate(model, bar=bar)
    seldon_deploy(model, name="iris", method=method, after=accuracy)


@pipeline
def manifest_iris(image: str | None = None, secret: str | None = None) -> None:
    seldon_manifest(train(), image=image, secret=secret)


@pipeline
def serve_a_dict() -> None:
    seldon_deploy(not_a_model(), name="dict")
