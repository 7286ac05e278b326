"""Standard BentoML steps: build a Bento from a trained model, serve it with the stack's
``bentoml`` model deployer.

Example:
    >>> from zenml_bridge import pipeline
    >>> from zenml_bridge_bentoml.steps import bento_build, bentoml_deploy
    >>> @pipeline
    ... def serving(rows: int = 150) -> None:
    ...     model = train(load(rows))                       # doctest: +SKIP
    ...     bentoml_deploy(bento_build(model, name="iris"))  # doctest: +SKIP

Both steps run uncached: a Bento and a server live outside the artifact store.
"""

from __future__ import annotations

from typing import Annotated, Any

from zenml_bridge import get_step_context, step
from zenml_bridge.errors import BridgeError

from zenml_bridge_bentoml.deployer import BentoMLModelDeployer


def stack_deployer(required: bool) -> BentoMLModelDeployer | None:
    """The stack's ``model_deployer`` when it is a ``bentoml`` one.

    Without one: None for ``bento_build`` (BentoML's default store is used), a BridgeError for
    ``bentoml_deploy``; another flavor is always an error.
    """
    context = get_step_context()
    try:
        deployer = context.component("model_deployer")
    except BridgeError:
        if required:
            raise
        return None
    if not isinstance(deployer, BentoMLModelDeployer):
        raise BridgeError(
            f"Step '{context.step_name}' needs the model deployer flavor 'bentoml', but the "
            f"stack's model_deployer is '{getattr(deployer, 'flavor', '?')}'. Use a stack with "
            "`components: {model_deployer: {flavor: bentoml}}`, or that flavor's own deploy step."
        )
    return deployer


@step(cache=False)
def bento_build(
    model: Any, service: str | None = None, name: str = "model"
) -> Annotated[str, "bento"]:
    """Save ``model`` into BentoML's model store and build a Bento; returns the Bento tag.

    Args:
        model: a scikit-learn estimator for the default service (``POST /predict`` with
            ``{"data": rows | records | {"columns": [...], "data": [...]}}``), or any model
            your own service serves.
        service: ``path/to/service.py:ClassName``, your BentoML service; it loads the model as
            ``bentoml.models.BentoModel("<name>:latest")``.
        name: the model's and the Bento's name in BentoML (lowercase, digits, ``-_.``).

    The tag, the model tag and the store are recorded as the step's metadata; the Bento's
    labels name the run and the step, so a deployment finds the model artifact by lineage.
    """
    from zenml_bridge_bentoml.bento import build_bento

    context = get_step_context()
    deployer = stack_deployer(required=False)
    labels = {
        "zenml_bridge_run": context.run_id,
        "zenml_bridge_step": context.step_name,
        "zenml_bridge_pipeline": context.pipeline_name,
    }
    home = deployer.home if deployer is not None else None
    tag = build_bento(model, name=name, service=service, labels=labels, home=home)
    context.log_metadata({"bento_tag": tag, "bentoml_home": home or "default"})
    return tag


@step(cache=False)
def bentoml_deploy(
    bento: str, name: str | None = None, port: int | None = None, timeout: float | None = None
) -> Annotated[str, "url"]:
    """Serve Bento ``bento`` with the stack's ``bentoml`` model deployer; returns its URL.

    Args:
        bento: a Bento tag (the output of :func:`bento_build`).
        name: the deployment's name (default: the Bento's name).
        port: a fixed port on 127.0.0.1 (default: a free one).
        timeout: seconds to wait until the server is ready (default: the deployer's, 120).
    """
    deployer = stack_deployer(required=True)
    assert deployer is not None
    config = {"port": port, "timeout": timeout}
    deployment = deployer.deploy(bento, name or bento.split(":", 1)[0], config)
    get_step_context().log_metadata(
        {"deployment_id": deployment.id, "url": deployment.url, "bento_tag": bento}
    )
    return deployment.url
