"""The ``bentoml`` model deployer: ``bentoml serve`` of a Bento on 127.0.0.1, recorded.

Stack config (``.zenml_bridge/config.yaml``)::

    stacks:
      default:
        components:
          model_deployer:
            flavor: bentoml
            home: /srv/bentoml     # BentoML's store (default: BENTOML_HOME or ~/bentoml)
            timeout: 120           # seconds to wait for /readyz
            port: null             # a fixed port; default: a free one

The server runs with this interpreter (``python -m bentoml serve``) in its own process group;
``zenml-bridge deployments stop ID`` stops the whole group. Local only: a compile for Airflow
or Kubeflow with this deployer in the stack is refused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from zenml_bridge.deployers import Deployment, ModelDeployer, current_run_id
from zenml_bridge.errors import BridgeError

#: Options of the flavor (the stack config block, besides ``flavor``).
OPTIONS = ("home", "timeout", "port", "root")


class BentoMLModelDeployer(ModelDeployer):
    """Serves Bentos with ``bentoml serve`` on 127.0.0.1 (flavor ``bentoml``).

    Example:
        >>> deployer = BentoMLModelDeployer(home="/tmp/bentoml")      # doctest: +SKIP
        >>> deployer.deploy("iris:5puctnhmb2jy4ax4", "iris").url     # doctest: +SKIP
        'http://127.0.0.1:41234'
    """

    flavor: ClassVar[str] = "bentoml"
    local_only: ClassVar[bool] = True

    def __init__(self, store: Any = None, **config: Any) -> None:
        unknown = sorted(set(config) - set(OPTIONS))
        if unknown:
            from zenml_bridge.errors import did_you_mean

            raise BridgeError(
                f"The bentoml model deployer has no option {unknown[0]!r}."
                + did_you_mean(unknown[0], OPTIONS)
                + f" Its options: {', '.join(OPTIONS)}."
            )
        super().__init__(store=store, **config)

    @property
    def home(self) -> str | None:
        """BentoML's store folder for this deployer (None: BentoML's default)."""
        value = self.config.get("home")
        return str(Path(str(value)).expanduser()) if value else None

    def server_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.home:
            env["BENTOML_HOME"] = self.home
        env.setdefault("BENTOML_DO_NOT_TRACK", "True")
        return env

    def deploy(
        self, artifact: Any, name: str, config: Mapping[str, Any] | None = None
    ) -> Deployment:
        """Serve the Bento ``artifact`` (its tag) as ``name``; returns the running deployment.

        ``config`` may hold ``port``, ``timeout`` and ``artifact_id`` (the model artifact, when
        the Bento's labels do not name it).
        """
        options = dict(config or {})
        tag = str(artifact)
        labels = self.bento_labels(tag)
        artifact_id = options.get("artifact_id") or self.model_artifact(labels)
        return self.serve_local(
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                tag,
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ],  # fmt: skip
            name=name,
            health_path="/readyz",
            artifact_id=artifact_id,
            run_id=current_run_id(),
            env=self.server_env(),
            timeout=options.get("timeout"),
            port=options.get("port"),
            config={"bento": tag, "home": self.home},
        )

    def bento_labels(self, tag: str) -> dict[str, str]:
        """The labels of Bento ``tag``; a BridgeError when this store has no such Bento."""
        import bentoml
        from bentoml.exceptions import BentoMLException, NotFound

        from zenml_bridge_bentoml.bento import bentoml_home

        try:
            with bentoml_home(self.home):
                bento = bentoml.get(tag)
        except NotFound:
            where = self.home or os.environ.get("BENTOML_HOME") or "~/bentoml"
            raise BridgeError(
                f"There is no Bento {tag!r} in the BentoML store {where}. Build it with "
                "bento_build (with the same model deployer `home`), or check the tag with "
                "`bentoml list`."
            ) from None
        except BentoMLException as exc:
            raise BridgeError(f"Bento {tag!r}: {exc}. Give a tag as NAME:VERSION.") from None
        return {str(k): str(v) for k, v in (bento.info.labels or {}).items()}

    def model_artifact(self, labels: Mapping[str, str]) -> str | None:
        """The model artifact a Bento was built from (its build step's input, by lineage)."""
        from zenml_bridge.stores.deployments import consumed_artifact

        run_id, step = labels.get("zenml_bridge_run"), labels.get("zenml_bridge_step")
        if not run_id or not step:
            return None
        return consumed_artifact(self.store, run_id, step, "model")
