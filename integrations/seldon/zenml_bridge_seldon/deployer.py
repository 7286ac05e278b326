"""The ``seldon`` model deployer: a model artifact served by seldon-core's REST wrapper.

The server is ``python -m zenml_bridge_seldon.serve`` (seldon-core's own Flask app, the
Seldon protocol of a cluster) on 127.0.0.1 and a free port, in its own process group; the
deployment is recorded in the metadata store, so ``zenml-bridge deployments list | stop |
logs`` work for it like for every other flavor.

Stack configuration (``.zenml_bridge/config.yaml``)::

    components:
      model_deployer: {flavor: seldon, timeout: 120}   # options: port, timeout, root
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, ClassVar

from zenml_bridge.deployers import Deployment, ModelDeployer
from zenml_bridge.errors import BridgeError

from zenml_bridge_seldon.model import METHODS

#: The materializer whose files the Seldon model reads (``model.joblib``).
SKLEARN_MATERIALIZER = "sklearn.joblib"
#: seldon-core's liveness route; the server loads the model before it binds, so an answer
#: here means predictions work.
HEALTH_PATH = "/health/ping"
PREDICT_PATH = "/api/v1.0/predictions"


def artifact_fields(artifact: Any) -> dict[str, Any]:
    """``id``, ``uri``, ``sha256`` and ``materializer`` of a model artifact.

    Takes what a step gets from ``get_step_context().input_artifact(...)`` (a mapping) or an
    :class:`~zenml_bridge.runtime.records.ArtifactRecord` (``run.steps[...].outputs[...]``).
    """
    if isinstance(artifact, Mapping):
        fields = {k: artifact.get(k) for k in ("id", "uri", "sha256", "materializer")}
    else:
        fields = {
            "id": getattr(artifact, "artifact_id", None),
            "uri": getattr(artifact, "uri", None),
            "sha256": getattr(artifact, "sha256", None),
            "materializer": getattr(artifact, "materializer", None),
        }
    if not fields["uri"]:
        raise BridgeError(
            f"The Seldon deployer needs a stored model artifact, got {type(artifact).__name__}. "
            "Pass the output of the training step (seldon_deploy(model)) or an artifact record "
            "(run.steps['train'].outputs['model'])."
        )
    return fields


class SeldonModelDeployer(ModelDeployer):
    """Serves scikit-learn model artifacts with seldon-core's Python REST wrapper, locally.

    Options (stack config or keyword arguments): ``port`` (fixed port; default a free one),
    ``timeout`` (seconds to wait until healthy; default 120), ``root`` (where server folders and
    logs go; default ``.zenml_bridge/deployments``).
    """

    flavor: ClassVar[str] = "seldon"
    #: Its servers are processes on this machine: a stack with it cannot be compiled for
    #: Airflow or Kubeflow (deploy to a cluster with seldon_manifest instead).
    local_only: ClassVar[bool] = True

    def deploy(
        self, artifact: Any, name: str, config: Mapping[str, Any] | None = None
    ) -> Deployment:
        """Serve the model artifact as ``name`` on 127.0.0.1 and record the deployment.

        Args:
            artifact: the model artifact (see :func:`artifact_fields`).
            name: the service's name in ``deployments list``.
            config: ``method`` (``predict``, ``predict_proba``, ``decision_function``),
                ``port``, ``timeout``, ``run_id``.

        Raises:
            BridgeError: not a scikit-learn model artifact, a bad method, the port is in use,
                or the server did not become healthy (with its log tail; nothing left running).
        """
        options = dict(config or {})
        fields = artifact_fields(artifact)
        if fields["materializer"] not in (None, SKLEARN_MATERIALIZER):
            raise BridgeError(
                f"The Seldon deployer cannot serve artifact {fields['id'] or fields['uri']}: "
                f"it was stored by the {fields['materializer']!r} materializer, and the Seldon "
                f"model reads scikit-learn estimators ({SKLEARN_MATERIALIZER}). Deploy a "
                "scikit-learn model, or build your own image and use seldon_manifest()."
            )
        method = str(options.get("method", "predict"))
        if method not in METHODS:
            raise BridgeError(
                f"Seldon method {method!r} is not supported. Use one of: {', '.join(METHODS)}."
            )
        cmd = [
            sys.executable,
            "-m",
            "zenml_bridge_seldon.serve",
            "--model-uri",
            str(fields["uri"]),
            "--model-sha256",
            str(fields["sha256"] or ""),
            "--method",
            method,
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ]
        timeout = options.get("timeout")
        return self.serve_local(
            cmd,
            name=name,
            health_path=HEALTH_PATH,
            artifact_id=fields["id"],
            run_id=options.get("run_id"),
            timeout=float(timeout) if timeout is not None else None,
            port=options.get("port"),
            config={"method": method, "model_uri": fields["uri"], "predict_path": PREDICT_PATH},
        )
