"""Pipelines the Seldon tests run (a module, so that step processes can import the steps)."""

from __future__ import annotations

from typing import Annotated

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from zenml_bridge import pipeline, step

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


@pipeline
def serve_iris(method: str = "predict") -> None:
    seldon_deploy(train(), name="iris", method=method)


@pipeline
def manifest_iris(image: str | None = None, secret: str | None = None) -> None:
    seldon_manifest(train(), image=image, secret=secret)


@pipeline
def serve_a_dict() -> None:
    seldon_deploy(not_a_model(), name="dict")
