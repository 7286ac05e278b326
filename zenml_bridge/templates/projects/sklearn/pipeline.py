"""Train a scikit-learn classifier on a dataset bundled with scikit-learn.

zenml-bridge run --config run.yaml
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from zenml_bridge import get_step_context, pipeline, step

LOADERS = {
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
    "breast_cancer": datasets.load_breast_cancer,
}


@step
def load(dataset: str = "wine") -> pd.DataFrame:
    """The dataset as one table; the label is the column `target`."""
    if dataset not in LOADERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(LOADERS)}")
    frame = LOADERS[dataset](as_frame=True).frame
    return frame.reset_index(drop=True)


@step
def split(
    df: pd.DataFrame, test_size: float = 0.25, seed: int = 0
) -> tuple[Annotated[pd.DataFrame, "train"], Annotated[pd.DataFrame, "test"]]:
    """A stratified split."""
    train, test = train_test_split(
        df, test_size=test_size, random_state=seed, stratify=df["target"]
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


@step
def train(
    train: pd.DataFrame, C: float = 1.0, max_iter: int = 1000
) -> Annotated[Pipeline, "model"]:
    """Standardized features, then a logistic regression."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    return model.fit(train.drop(columns="target"), train["target"])


@step
def evaluate(model: Pipeline, test: pd.DataFrame) -> Annotated[dict[str, float], "scores"]:
    """Accuracy and macro F1 on the test rows, logged as metrics too."""
    predicted = model.predict(test.drop(columns="target"))
    scores = {
        "accuracy": float(accuracy_score(test["target"], predicted)),
        "f1": float(f1_score(test["target"], predicted, average="macro")),
    }
    for name, value in scores.items():
        get_step_context().log_metric(name, value)
    return scores


@pipeline
def training(dataset: str = "wine", test_size: float = 0.25, C: float = 1.0) -> None:
    """load -> split -> train -> evaluate."""
    train_df, test_df = split(load(dataset=dataset), test_size=test_size)
    model = train(train_df, C=C)
    evaluate(model, test_df)


if __name__ == "__main__":
    run = training()
    print(run.status, run.steps["evaluate"].outputs["scores"].load())
