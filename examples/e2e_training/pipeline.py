"""End to end training on a dataset that ships with scikit-learn (no download).

ingest -> validate (Great Expectations) -> split -> train -> evaluate -> drift report (Evidently)
-> track (MLflow) -> gate (accuracy bar, ``StopPipeline``) -> deploy (BentoML)

Each integration step runs when its library is installed and otherwise records a note saying
what it skipped and what to install; the rest of the pipeline runs either way::

    zenml-bridge run examples/e2e_training/pipeline.py:e2e_training
    zenml-bridge run examples/e2e_training/pipeline.py:e2e_training -p min_accuracy=0.99  # stopped
    zenml-bridge runs show latest

The same file compiles for Airflow and Kubeflow (``zenml-bridge compile ... --target airflow``);
there each task needs the libraries of its step in the worker's environment.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Annotated, Any

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from zenml_bridge import HTML, StopPipeline, get_step_context, pipeline, step

#: Features the checks and the drift report look at (a few, to keep reports small).
CHECKED = ["mean radius", "mean texture", "mean area", "mean smoothness"]


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported; ``$E2E_TRAINING_SKIP`` (comma-separated module names,
    e.g. ``mlflow,bentoml``) treats installed ones as missing (run with ``--no-cache`` then: the
    variable is not part of the cache key)."""
    skipped = {name.strip() for name in os.environ.get("E2E_TRAINING_SKIP", "").split(",")}
    return module not in skipped and importlib.util.find_spec(module) is not None


def _skipped(what: str, module: str, install: str) -> dict[str, Any]:
    """The record of a skipped integration step (also printed to the step's log)."""
    note = f"{what} skipped: {module} is not installed (pip install {install})."
    print(note, flush=True)
    get_step_context().log_metadata({"skipped": note})
    return {"skipped": True, "note": note}


@step
def ingest(rows: int = 0) -> Annotated[pd.DataFrame, "data"]:
    """The breast cancer dataset (569 rows, 30 features, label `target`); `rows` > 0 keeps the
    first rows only."""
    frame = load_breast_cancer(as_frame=True).frame
    return (frame.head(rows) if rows > 0 else frame).reset_index(drop=True)


@step
def validate(data: pd.DataFrame) -> Annotated[dict[str, Any], "validation"]:
    """Great Expectations checks: no missing values, a binary label, plausible ranges. A failed
    check stops the run (``StopPipeline``) before anything is trained on bad data."""
    if not _installed("great_expectations"):
        return _skipped("Data validation", "great_expectations", "great-expectations")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas("e2e")
    batch = (
        source.add_dataframe_asset("data")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": data})
    )
    suite = gx.ExpectationSuite(name="e2e_training")
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="target", value_set=[0, 1]))
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=50))
    for column in CHECKED:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0))
    result = batch.validate(suite)
    failed = [r.expectation_config.type for r in result.results if not r.success]
    summary = {"success": bool(result.success), "checks": len(result.results), "failed": failed}
    get_step_context().log_metric("failed_checks", len(failed))
    if not result.success:
        raise StopPipeline(f"data validation failed: {', '.join(failed)}", outputs=summary)
    return summary


@step
def split(
    data: pd.DataFrame, test_size: float = 0.3, seed: int = 0
) -> tuple[Annotated[pd.DataFrame, "train"], Annotated[pd.DataFrame, "test"]]:
    """A stratified split."""
    train, test = train_test_split(
        data, test_size=test_size, random_state=seed, stratify=data["target"]
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
    """Accuracy and F1 on the test rows, logged as metrics."""
    predicted = model.predict(test.drop(columns="target"))
    scores = {
        "accuracy": float(accuracy_score(test["target"], predicted)),
        "f1": float(f1_score(test["target"], predicted)),
    }
    for name, value in scores.items():
        get_step_context().log_metric(name, value)
    return scores


@step
def drift_report(train: pd.DataFrame, test: pd.DataFrame) -> Annotated[HTML, "drift_report"]:
    """An Evidently data drift report of the test rows against the training rows (an HTML page,
    shown by `zenml-bridge artifacts show ID --open` and the dashboard)."""
    if not _installed("evidently"):
        note = _skipped("Drift report", "evidently", "evidently")["note"]
        return HTML(f"<p>{note}</p>")
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset(columns=CHECKED)]).run(
        current_data=test[CHECKED], reference_data=train[CHECKED]
    )
    for metric in snapshot.dict().get("metrics", []):
        value = metric.get("value")
        if str(metric.get("metric_name")).startswith("DriftedColumnsCount") and isinstance(
            value, dict
        ):
            get_step_context().log_metric("drift_share", float(value.get("share", 0.0)))
    return HTML(snapshot.get_html_str(as_iframe=False))


@step
def track(
    model: Pipeline, scores: dict[str, float], tracking_uri: str = ""
) -> Annotated[dict[str, Any], "tracking"]:
    """Log the model's parameters, scores and the model itself to MLflow (``tracking_uri``,
    else $MLFLOW_TRACKING_URI, else ``sqlite:///mlflow.db`` in the working directory)."""
    if not _installed("mlflow"):
        return _skipped("MLflow tracking", "mlflow", "mlflow")
    import mlflow
    import mlflow.sklearn

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("e2e_training")
    context = get_step_context()
    with mlflow.start_run(run_name=context.run_id) as run:
        estimator = model.steps[-1][1]
        mlflow.log_params({k: v for k, v in estimator.get_params().items() if v is not None})
        mlflow.log_metrics(scores)
        mlflow.set_tag("zenml_bridge.run_id", context.run_id)
        mlflow.sklearn.log_model(model, name="model")
    return {"skipped": False, "mlflow_run_id": run.info.run_id, "experiment": "e2e_training"}


@step
def gate(scores: dict[str, float], min_accuracy: float = 0.9) -> Annotated[float, "accuracy"]:
    """Stops the run (state ``stopped``, deploy ``skipped``) when accuracy is below the bar."""
    accuracy = scores["accuracy"]
    if accuracy < min_accuracy:
        raise StopPipeline(
            f"accuracy {accuracy:.3f} is below min_accuracy {min_accuracy}: not deployed",
            outputs=accuracy,
        )
    return accuracy


@step
def deploy(
    model: Pipeline, accuracy: float, name: str = "e2e_classifier"
) -> Annotated[dict[str, Any], "deployment"]:
    """Save the model in BentoML's model store (``$BENTOML_HOME``), ready for ``bentoml serve``
    or a model deployer of the stack."""
    if not _installed("bentoml"):
        return _skipped("Deployment", "bentoml", "bentoml")
    import bentoml

    saved = bentoml.sklearn.save_model(
        name, model, metadata={"accuracy": accuracy, "run_id": get_step_context().run_id}
    )
    return {"skipped": False, "bentoml_model": str(saved.tag), "accuracy": accuracy}


@pipeline
def e2e_training(
    rows: int = 0,
    test_size: float = 0.3,
    C: float = 1.0,
    min_accuracy: float = 0.9,
    tracking_uri: str = "",
) -> None:
    """ingest, validate, split, train, evaluate, drift report, track, gate, deploy."""
    data = ingest(rows=rows)
    checked = validate(data)
    train_df, test_df = split(data, test_size=test_size, after=checked)
    model = train(train_df, C=C)
    scores = evaluate(model, test_df)
    drift_report(train_df, test_df)
    track(model, scores, tracking_uri=tracking_uri)
    deploy(model, gate(scores, min_accuracy=min_accuracy))


if __name__ == "__main__":
    run = e2e_training()
    print(run.status, run.steps["evaluate"].outputs["scores"].load())
