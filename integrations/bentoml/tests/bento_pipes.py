"""Pipelines of the BentoML tests: train on iris, gate on accuracy, build, deploy."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from zenml_bridge import StopPipeline, pipeline, step

from zenml_bridge_bentoml.steps import bento_build, bentoml_deploy


@step
def load() -> pd.DataFrame:
    frame = load_iris(as_frame=True).frame
    return frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))


@step
def train(df: pd.DataFrame) -> Annotated[LogisticRegression, "model"]:
    features = df.drop(columns="target")
    return LogisticRegression(max_iter=500).fit(features, df["target"])


@step
def evaluate(df: pd.DataFrame, model: LogisticRegression, bar: float = 0.9) -> float:
    accuracy = float(model.score(df.drop(columns="target"), df["target"]))
    if accuracy < bar:
        raise StopPipeline(f"accuracy {accuracy:.3f} < {bar}", outputs=accuracy)
    return accuracy


@step
def weights() -> dict[str, Any]:
    return {"coef": [0.1, 0.2]}


@pipeline
def serve_iris(name: str = "iris", bar: float = 0.9) -> None:
    df = load()
    model = train(df)
    accuracy = evaluate(df, model, bar=bar)
    bento = bento_build(model, name=name, after=accuracy)
    bentoml_deploy(bento)


@pipeline
def serve_dict() -> None:
    bento_build(weights(), name="weights")


@step
def scaler(factor: float = 3.0) -> dict[str, float]:
    return {"factor": factor}


@pipeline
def serve_custom(service: str, factor: float = 3.0) -> None:
    bentoml_deploy(bento_build(scaler(factor), service=service, name="scaler"))
