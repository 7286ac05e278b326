"""Quickstart: load a small table, split it, train a classifier, evaluate it.

Run it on the embedded default (SQLite + local folder)::

    zenml-bridge run examples/quickstart/pipeline.py:training -p rows=500
    zenml-bridge runs show latest

Run it again: every step is served from the cache. Change ``-p C=0.5`` and only ``train`` and
``evaluate`` run again.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from zenml_bridge import get_step_context, pipeline, step


@step
def load(rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    """A synthetic table: two features and a label that depends on them."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.normal(size=rows)
    noise = rng.normal(scale=0.5, size=rows)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": (x1 + 0.5 * x2 + noise > 0).astype(int)})


@step
def split(
    df: pd.DataFrame, test_size: float = 0.2
) -> tuple[Annotated[pd.DataFrame, "train"], Annotated[pd.DataFrame, "test"]]:
    """The first rows for training, the rest for testing."""
    cut = int(len(df) * (1 - test_size))
    return df.iloc[:cut].reset_index(drop=True), df.iloc[cut:].reset_index(drop=True)


@step
def train(train: pd.DataFrame, C: float = 1.0) -> Annotated[LogisticRegression, "model"]:
    """A logistic regression on x1 and x2."""
    return LogisticRegression(C=C).fit(train[["x1", "x2"]], train["y"])


@step
def evaluate(model: LogisticRegression, test: pd.DataFrame) -> Annotated[float, "accuracy"]:
    """Accuracy on the test rows, also logged as a metric of the step."""
    accuracy = float(model.score(test[["x1", "x2"]], test["y"]))
    get_step_context().log_metric("accuracy", accuracy)
    return accuracy


@pipeline
def training(rows: int = 1000, C: float = 1.0) -> None:
    """Load, split, train, evaluate."""
    train_df, test_df = split(load(rows=rows))
    model = train(train_df, C=C)
    evaluate(model, test_df)


if __name__ == "__main__":
    run = training(rows=500)
    print(run.status, run.steps["evaluate"].outputs["accuracy"].load())
