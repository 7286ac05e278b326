"""Seldon steps: a SeldonDeployment manifest for a cluster, or a local Seldon server.

Example:
    >>> from zenml_bridge import pipeline
    >>> from zenml_bridge_seldon.steps import seldon_deploy, seldon_manifest
    >>> @pipeline
    ... def serving(rows: int = 100) -> None:
    ...     model = train(load(rows))                             # doctest: +SKIP
    ...     seldon_manifest(model, secret="s3-credentials")       # doctest: +SKIP
    ...     seldon_deploy(model)                                  # doctest: +SKIP

``seldon_manifest`` emits the ``SeldonDeployment`` (artifact ``manifest``, its YAML also a
visualization: ``zenml-bridge artifacts show ID --open``) for ``kubectl apply -f``.
``seldon_deploy`` serves the model with the stack's ``model_deployer`` (flavor ``seldon``) and
returns the endpoint URL; ``zenml-bridge deployments list`` shows it.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from zenml_bridge import step
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime.context import get_step_context

from zenml_bridge_seldon.manifest import SeldonManifest, build_manifest, k8s_name
from zenml_bridge_seldon.model import check_servable

logger = logging.getLogger(__name__)


@step
def seldon_manifest(
    model: Any,
    image: str | None = None,
    name: str | None = None,
    implementation: str = "auto",
    model_uri: str | None = None,
    namespace: str | None = None,
    replicas: int = 1,
    method: str = "predict",
    secret: str | None = None,
    service_account: str | None = None,
) -> Annotated[SeldonManifest, "manifest"]:
    """A ``SeldonDeployment`` serving ``model`` from the artifact store.

    Args:
        model: a step output holding a scikit-learn estimator (its artifact folder is served).
        image: your image with zenml-bridge-seldon installed (serves the model with
            :class:`~zenml_bridge_seldon.model.SeldonModel`); without one, Seldon's
            prepackaged ``SKLEARN_SERVER`` serves it.
        name: the SeldonDeployment's name; default: the pipeline's name as a Kubernetes name.
        implementation: ``auto``, ``SKLEARN_SERVER``, ``MLFLOW_SERVER`` (needs ``model_uri`` of
            an MLflow model) or ``custom``.
        model_uri: the model's URI as the cluster reads it; default: the artifact's URI.
        namespace: Kubernetes namespace.
        replicas: pods serving the model.
        method: ``predict``, ``predict_proba`` or ``decision_function``.
        secret: name of the Kubernetes Secret with the artifact store's credentials.
        service_account: a ServiceAccount that can read the artifact store.
    """
    context = get_step_context()
    artifact = context.input_artifact("model")
    if implementation == "MLFLOW_SERVER":
        if not model_uri:
            raise BridgeError(
                "seldon_manifest(implementation='MLFLOW_SERVER') needs model_uri=... (the "
                "MLflow model's artifact location, e.g. s3://bucket/1/models/m-1/artifacts): "
                "the step's own artifact is not an MLflow model folder."
            )
    else:
        check_servable(model, method)
    made = build_manifest(
        name=name if name is not None else k8s_name(context.pipeline_name),
        model_uri=model_uri or str(artifact["uri"]),
        model_sha256="" if model_uri else str(artifact.get("sha256") or ""),
        image=image,
        implementation=implementation,
        namespace=namespace,
        replicas=replicas,
        method=method,
        secret=secret,
        service_account=service_account,
        labels={"zenml-bridge/run": k8s_name(context.run_id)},
    )
    for warning in made.warnings:
        logger.warning("%s", warning)
    graph = made.manifest["spec"]["predictors"][0]["graph"]
    context.log_metadata(
        {
            "seldon_deployment": made.name,
            "seldon_implementation": graph.get("implementation", "custom"),
            "seldon_model_uri": model_uri or artifact["uri"],
            "seldon_warnings": list(made.warnings),
        }
    )
    return made


@step(cache=False)  # a cache hit would start no server: deploying always runs
def seldon_deploy(
    model: Any,
    name: str | None = None,
    method: str = "predict",
    port: int | None = None,
    timeout: float | None = None,
) -> Annotated[str, "url"]:
    """Serve ``model`` with the stack's ``seldon`` model deployer; returns the endpoint URL.

    Send predictions to ``<url>/api/v1.0/predictions`` as ``{"data": {"ndarray": rows}}``.

    Args:
        model: a step output holding a scikit-learn estimator.
        name: the deployment's name (default: the pipeline's name).
        method: ``predict``, ``predict_proba`` or ``decision_function``.
        port: a fixed port on 127.0.0.1 (default: the deployer's option, else a free one).
        timeout: seconds to wait until the server answers (default: the deployer's option).
    """
    context = get_step_context()
    check_servable(model, method)
    deployer = _deployer(context)
    config: dict[str, Any] = {"method": method, "run_id": context.run_id}
    if port is not None:
        config["port"] = port
    if timeout is not None:
        config["timeout"] = timeout
    deployment = deployer.deploy(
        context.input_artifact("model"), name or context.pipeline_name, config
    )
    context.log_metadata({"deployment_id": deployment.id, "deployment_url": deployment.url})
    return str(deployment.url)


def _deployer(context: Any) -> Any:
    from zenml_bridge_seldon.deployer import SeldonModelDeployer

    deployer = context.component("model_deployer")
    if getattr(deployer, "flavor", None) != SeldonModelDeployer.flavor:
        raise BridgeError(
            f"seldon_deploy needs the stack's model_deployer to be the 'seldon' flavor; this "
            f"stack's is '{getattr(deployer, 'flavor', '?')}'. Set `components: {{model_deployer: "
            "{flavor: seldon}}` in the stack config, or use that flavor's own deploy step."
        )
    return deployer
