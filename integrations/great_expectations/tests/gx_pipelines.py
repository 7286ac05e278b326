"""Pipelines of the GX tests: iris from scikit-learn, made good or bad by a parameter."""

from __future__ import annotations

import numpy as np
import pandas as pd
from zenml_bridge import pipeline, step

from zenml_bridge_great_expectations.steps import gx_profile, gx_validate


def iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    return frame


def batch(fault: str = "none", seed: int = 0) -> pd.DataFrame:
    """Half of iris (the other half is the reference), with one kind of fault injected."""
    frame = iris()
    current = frame.iloc[1::2].reset_index(drop=True).copy()
    rng = np.random.default_rng(seed)
    if fault == "nulls":
        rows = rng.choice(len(current), size=8, replace=False)
        current.loc[rows, "petal_length"] = np.nan
    elif fault == "out_of_range":
        current.loc[:4, "sepal_width"] = 42.0
    elif fault == "drop_column":
        current = current.drop(columns=["petal_width"])
    elif fault != "none":
        raise ValueError(fault)
    return current


def reference() -> pd.DataFrame:
    # Both halves together: the profile's ranges and value sets cover every good batch.
    return iris()


SUITE = {
    "name": "iris_literal",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "petal_length"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "sepal_width", "min_value": 1.0, "max_value": 5.0},
        },
    ],
}


@step
def load_reference() -> pd.DataFrame:
    return reference()


@step
def load_batch(fault: str = "none") -> pd.DataFrame:
    return batch(fault)


@step
def train(df: pd.DataFrame) -> float:
    return float(df["petal_length"].mean())


@pipeline
def gated(fault: str = "none") -> None:
    suite = gx_profile(load_reference(), name="iris")
    df = load_batch(fault)
    report = gx_validate(df, suite=suite)
    train(df, after=report)


@pipeline
def literal_gate(fault: str = "none") -> None:
    """Three tasks: the Airflow test's pipeline (each task imports GX: seconds apiece)."""
    df = load_batch(fault)
    report = gx_validate(df, suite=SUITE)
    train(df, after=report)


@pipeline
def literal_suite(fault: str = "none") -> None:
    gx_validate(load_batch(fault), suite=SUITE)


@pipeline
def warned(fault: str = "nulls") -> None:
    report = gx_validate(load_batch(fault), suite=SUITE, on_failure="warn")
    train(load_batch(fault), after=report)
