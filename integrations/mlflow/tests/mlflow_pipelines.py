"""Pipelines the MLflow tests run (a module, so step processes can import the steps)."""

from __future__ import annotations

import os
import signal
from typing import Annotated, Any

import pandas as pd
from sklearn.linear_model import LogisticRegression
from zenml_bridge import get_step_context, pipeline, step

from zenml_bridge_mlflow.model import MLflowModel
from zenml_bridge_mlflow.steps import load_registered_model, log_model, register_model


@step
def load(rows: int = 60) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x1": [float(i % 7) for i in range(rows)],
            "x2": [float(i % 5) for i in range(rows)],
            "y": [int(i % 7 > 3) for i in range(rows)],
        }
    )


@step
def train(df: pd.DataFrame, C: float = 1.0) -> Annotated[LogisticRegression, "model"]:
    model = LogisticRegression(C=C, max_iter=200).fit(df[["x1", "x2"]], df["y"])
    context = get_step_context()
    context.log_metric("accuracy", float(model.score(df[["x1", "x2"]], df["y"])))
    context.log_metric("accuracy", 0.5)  # logged again: the last value counts
    context.log_metadata({"rows": len(df), "note": "trained"})
    return model


@step
def evaluate(df: pd.DataFrame, model: LogisticRegression, threshold: float = 0.5) -> float:
    score = float(model.score(df[["x1", "x2"]], df["y"]))
    get_step_context().log_metric("test_score", score)
    return score


@pipeline
def training(rows: int = 60, C: float = 1.0) -> None:
    df = load(rows=rows)
    model = train(df, C=C)
    evaluate(df, model)


@step
def fail_here(df: pd.DataFrame) -> int:
    raise ValueError("boom in step")


@pipeline
def failing(rows: int = 20) -> None:
    fail_here(load(rows=rows))


# -- a server outage in the middle of a run -------------------------------------------------


@step
def stop_tracking_server(df: pd.DataFrame) -> int:
    """Takes the MLflow server down while the run is going (its pid is given by the test)."""
    pgid = int(os.environ["ZB_TEST_SERVER_PGID"])
    os.killpg(pgid, signal.SIGKILL)
    return len(df)


@step
def after_outage(n: int) -> int:
    get_step_context().log_metric("n", n)
    return n * 2


@pipeline
def outage(rows: int = 10) -> None:
    after_outage(stop_tracking_server(load(rows=rows)))


# -- models ---------------------------------------------------------------------------------


@step
def features(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["y"])


@pipeline
def registry(rows: int = 60, model_name: str = "zb-model") -> None:
    df = load(rows=rows)
    model = train(df)
    logged = log_model(model, input_example=features(df))
    version = register_model(logged, name=model_name, alias="champion", tags={"team": "ml"})
    served = load_registered_model(name=model_name, alias="champion", after=version)
    predict(served, features(df))


@step
def predict(model: MLflowModel, x: pd.DataFrame) -> list[int]:
    return [int(v) for v in model.load().predict(x)]


@step(settings={"mlflow": {"autolog": {"log_models": False}}})
def train_autologged(df: pd.DataFrame) -> Annotated[LogisticRegression, "model"]:
    return LogisticRegression(C=0.5, max_iter=150).fit(df[["x1", "x2"]], df["y"])


@pipeline
def autologged(rows: int = 60) -> None:
    df = load(rows=rows)
    train_autologged(df)
    train(df)


class Doubler:
    """A pyfunc model: MLflow 3 takes any PythonModel subclass."""


def _doubler() -> Any:
    import mlflow.pyfunc

    class DoublerModel(mlflow.pyfunc.PythonModel):
        def predict(self, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
            return model_input * 2

    return DoublerModel()


@step(allow_pickle=True)
def make_pyfunc() -> Any:
    return _doubler()


@step
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1.0, 2.0, 3.0]})


@pipeline
def pyfunc_model() -> None:
    logged = log_model(make_pyfunc(), input_example=frame(), name="doubler", flavor="pyfunc")
    predict_pyfunc(logged, frame())


@step
def predict_pyfunc(model: MLflowModel, df: pd.DataFrame) -> list[float]:
    return [float(v) for v in model.predict(df)["a"]]


# -- one process per step (what Airflow and Kubeflow do) -------------------------------------


@step
def left(n: int = 3) -> int:
    get_step_context().log_metric("left_metric", n)
    return n


@step
def right(n: int = 4) -> int:
    get_step_context().log_metric("right_metric", n)
    return n


@step
def join(a: int, b: int) -> int:
    return a + b


@pipeline
def fan(n: int = 3) -> None:
    join(left(n=n), right(n=n))


def race_worker(url: str, run_ids: list[str], step_name: str, barrier: Any, out: Any) -> None:
    """One 'step process' per call: starts the run and its step at the same moment as another."""
    from zenml_bridge.runtime.tracking import RunInfo, StepInfo

    from zenml_bridge_mlflow.tracker import MLflowExperimentTracker

    tracker = MLflowExperimentTracker(tracking_uri=url)
    for run_id in run_ids:
        run = RunInfo(
            run_id=run_id,
            pipeline="race",
            parameters={"p": 1},
            ir_sha256="0" * 64,
            backend="airflow",
        )
        barrier.wait(timeout=120)
        links = tracker.on_run_start(run)
        info = StepInfo(name=step_name, parameters={"s": step_name})
        tracker.on_step_start(run, info)
        tracker.log_metrics(run, info, {"m": 1.0})
        done = StepInfo(name=step_name, parameters={"s": step_name}, outputs={"o": ("u", "h")})
        tracker.on_step_end(run, done, "completed")
        out.put((run_id, step_name, links["mlflow.run_id"]))
