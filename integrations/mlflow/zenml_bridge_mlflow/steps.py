"""Standard MLflow steps, importable into any pipeline that runs with the MLflow tracker.

Example:
    >>> from zenml_bridge import pipeline
    >>> from zenml_bridge_mlflow.steps import log_model, register_model
    >>> @pipeline
    ... def training(rows: int = 100) -> None:
    ...     model = train(load(rows))                          # doctest: +SKIP
    ...     logged = log_model(model, input_example=load(rows))  # doctest: +SKIP
    ...     register_model(logged, name="iris", alias="champion")  # doctest: +SKIP

Every step logs into the MLflow run of the step itself (a child of the pipeline run), so the
model, its signature and input example sit beside the step's parameters and metrics.
"""

from __future__ import annotations

from typing import Annotated, Any

from zenml_bridge import step
from zenml_bridge.errors import BridgeError

from zenml_bridge_mlflow.context import active_step_run, fluent_uris, step_run
from zenml_bridge_mlflow.model import MLflowModel
from zenml_bridge_mlflow.settings import redact

FLAVORS = ("auto", "sklearn", "pyfunc")


@step
def log_model(
    model: Any,
    input_example: Any = None,
    name: str = "model",
    flavor: str = "auto",
    pip_requirements: list[str] | None = None,
) -> Annotated[MLflowModel, "mlflow_model"]:
    """Log a trained model to the step's MLflow run, with signature and input example.

    Args:
        model: a scikit-learn estimator (flavor ``sklearn``) or an
            ``mlflow.pyfunc.PythonModel`` / type-hinted callable (flavor ``pyfunc``).
        input_example: a few rows of model input (a DataFrame, array, list or dict); the first
            5 rows are stored and the signature is inferred from them and the model's output.
        name: the model's name in the run.
        flavor: ``auto`` (from the model's type), ``sklearn`` or ``pyfunc``.
        pip_requirements: the model's pip requirements; by default those of its flavor
            (MLflow's own inference starts a subprocess that takes seconds).
    """
    import mlflow

    chosen = _flavor_of(model, flavor)
    example = _head(input_example)
    with step_run() as run:
        if chosen == "sklearn":
            import mlflow.sklearn

            signature = None
            if example is not None:
                signature = mlflow.models.infer_signature(example, model.predict(example))
            info = mlflow.sklearn.log_model(
                model,
                name=name,
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements
                or mlflow.sklearn.get_default_pip_requirements(include_skops=True),
            )
        else:
            import cloudpickle

            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=model,
                input_example=example,
                pip_requirements=pip_requirements
                or [f"mlflow=={mlflow.__version__}", f"cloudpickle=={cloudpickle.__version__}"],
            )
        return MLflowModel.from_uri(info.model_uri, run_id=run.info.run_id)


@step
def register_model(
    model: MLflowModel,
    name: str,
    alias: str | None = "champion",
    tags: dict[str, str] | None = None,
    description: str | None = None,
) -> Annotated[dict[str, Any], "model_version"]:
    """Register a logged model as a new version in the MLflow model registry.

    Args:
        model: a model logged by :func:`log_model` (or any MLflowModel with an MLflow URI).
        name: registered model name (created when missing).
        alias: alias to point at the new version (``None`` for none).
        tags: extra tags for the model version; ``zenml_bridge.run_id`` and
            ``zenml_bridge.pipeline`` are always set.
        description: description of the version.

    Returns:
        ``{"name", "version", "uri", "alias", "source", "run_id"}`` of the new version.
    """
    import mlflow
    from mlflow import MlflowClient
    from zenml_bridge import get_step_context

    if not model.uri:
        raise BridgeError(
            f"register_model got a model at {model.path} that was never logged to MLflow, so "
            "it has no URI to register. Pass it through log_model first."
        )
    active = active_step_run()
    context = get_step_context()
    version_tags = {
        "zenml_bridge.run_id": context.run_id,
        "zenml_bridge.pipeline": context.pipeline_name,
        "zenml_bridge.step": context.step_name,
        **{str(k): str(v) for k, v in (tags or {}).items()},
    }
    with fluent_uris(active.tracking_uri, active.registry_uri):
        version = mlflow.register_model(model.uri, name, tags=version_tags)
    client = MlflowClient(tracking_uri=active.tracking_uri, registry_uri=active.registry_uri)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    if description:
        client.update_model_version(name, version.version, description=description)
    client.set_tag(active.run_id, "zenml_bridge.registered_model", f"{name}/{version.version}")
    return {
        "name": name,
        "version": str(version.version),
        "uri": f"models:/{name}/{version.version}",
        "alias": alias,
        "source": model.uri,
        "run_id": model.run_id,
    }


@step(cache=False)
def load_registered_model(
    name: str, version: str | None = None, alias: str | None = None
) -> Annotated[MLflowModel, "model"]:
    """Load a version of a registered model as a step output.

    Never cached: an alias or "latest" can point at a new version without any input changing.

    Args:
        name: registered model name.
        version: version number; or
        alias: alias such as ``champion``. With neither, the newest version is loaded.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if version is not None and alias is not None:
        raise BridgeError(
            f"load_registered_model('{name}') got both version={version!r} and alias={alias!r}. "
            "Pass one of them (or neither for the newest version)."
        )
    active = active_step_run()
    client = MlflowClient(tracking_uri=active.tracking_uri, registry_uri=active.registry_uri)
    try:
        if alias is not None:
            found = client.get_model_version_by_alias(name, alias)
        elif version is not None:
            found = client.get_model_version(name, str(version))
        else:
            versions = client.search_model_versions(
                f"name = '{name}'", order_by=["version_number DESC"], max_results=1
            )
            if not versions:
                raise BridgeError(
                    f"Registered model '{name}' has no versions at {redact(active.tracking_uri)}. "
                    "Register one with register_model first, or check the name."
                )
            found = versions[0]
    except MlflowException as exc:
        what = f"alias '{alias}'" if alias else f"version {version}" if version else "versions"
        raise BridgeError(
            f"Registered model '{name}' {what} not found at {redact(active.tracking_uri)}: "
            f"{str(exc).splitlines()[0]}. Check the name (mlflow models list) or register a "
            "version with register_model."
        ) from None
    uri = f"models:/{name}/{found.version}"
    client.set_tag(active.run_id, "zenml_bridge.loaded_model", f"{name}/{found.version}")
    with fluent_uris(active.tracking_uri, active.registry_uri):
        return MLflowModel.from_uri(uri, name=name, version=str(found.version), run_id=found.run_id)


def _flavor_of(model: Any, flavor: str) -> str:
    if flavor not in FLAVORS:
        raise BridgeError(
            f"log_model flavor {flavor!r} is not supported. Use one of {', '.join(FLAVORS)}."
        )
    if flavor != "auto":
        return flavor
    modules = {cls.__module__.split(".", 1)[0] for cls in type(model).__mro__}
    if "sklearn" in modules:
        return "sklearn"
    import mlflow.pyfunc

    if isinstance(model, mlflow.pyfunc.PythonModel) or callable(model):
        return "pyfunc"
    raise BridgeError(
        f"log_model cannot tell the MLflow flavor of a {type(model).__module__}."
        f"{type(model).__qualname__}. Pass a scikit-learn estimator, an mlflow.pyfunc."
        "PythonModel or a callable, or set flavor='sklearn' or 'pyfunc'."
    )


def _head(example: Any, rows: int = 5) -> Any:
    if example is None:
        return None
    if hasattr(example, "iloc"):
        return example.iloc[:rows]
    if isinstance(example, list):
        return example[:rows]
    if hasattr(example, "shape") and getattr(example, "ndim", 0) >= 1:
        return example[:rows]
    return example
