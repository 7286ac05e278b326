"""Pipelines of the Evidently tests: iris halves from scikit-learn, shifted by a parameter."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from zenml_bridge import pipeline, step

from zenml_bridge_evidently.steps import drift_gate, evidently_report, evidently_tests


def halves() -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    return frame.iloc[::2].reset_index(drop=True), frame.iloc[1::2].reset_index(drop=True)


def current(shift: str = "none") -> pd.DataFrame:
    """The other half of iris; ``drift`` moves two of five columns, ``nulls`` empties cells."""
    frame = halves()[1].copy()
    if shift == "drift":
        frame["sepal_length"] += 2.0
        frame["petal_width"] *= 3.0
    elif shift == "nulls":
        frame.loc[np.arange(0, 75, 5), "petal_length"] = np.nan
    elif shift != "none":
        raise ValueError(shift)
    return frame


@step
def load_reference() -> pd.DataFrame:
    return halves()[0]


@step
def load_current(shift: str = "none") -> pd.DataFrame:
    return current(shift)


@step
def load_both(
    shift: str = "none",
) -> tuple[Annotated[pd.DataFrame, "reference"], Annotated[pd.DataFrame, "current"]]:
    return halves()[0], current(shift)


@step
def retrain(df: pd.DataFrame) -> float:
    return float(df["sepal_length"].mean())


@pipeline
def monitored(shift: str = "none") -> None:
    reference, batch = load_reference(), load_current(shift)
    drift, _ = drift_gate(reference, batch, threshold=0.3)
    retrain(batch, after=drift)


@pipeline
def airflow_gate(shift: str = "none") -> None:
    """Three tasks: the Airflow test's pipeline (each task imports Evidently: seconds apiece)."""
    reference, batch = load_both(shift)
    drift, _ = drift_gate(reference, batch, threshold=0.3)
    retrain(batch, after=drift)


@pipeline
def reported(shift: str = "none") -> None:
    evidently_report(load_reference(), load_current(shift), presets=["DataSummaryPreset"])


NO_NULLS = [{"name": "MissingValueCount", "column": "petal_length", "lte": 0}]


@pipeline
def tested(shift: str = "none") -> None:
    batch = load_current(shift)
    checked = evidently_tests(load_reference(), batch, tests=NO_NULLS)
    retrain(batch, after=checked)
