"""The MLflow tracker's stack config block, and the ``mlflow`` settings block of steps.

Stack config (``.zenml_bridge/config.yaml``)::

    components:
      experiment_tracker:
        flavor: mlflow
        tracking_uri: http://127.0.0.1:5000   # default: sqlite:/// in .zenml_bridge/
        on_error: fail                        # or skip: run on without tracking, recorded

Step settings (validated at trace, compile and run; see :class:`MLflowStepSettings`)::

    @step(settings={"mlflow": {"autolog": {"log_models": False}}})
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from zenml_bridge.errors import BridgeError, did_you_mean
from zenml_bridge.settings import StepSettings

#: Keys the ``experiment_tracker`` block may hold for the mlflow flavor.
KEYS = (
    "flavor",
    "name",
    "tracking_uri",
    "registry_uri",
    "experiment_name",
    "artifact_location",
    "on_error",
    "timeout",
    "retries",
    "autolog",
    # Not for users: the .zenml_bridge/ folder, when the caller knows it (tests, benchmarks).
    "home",
)

ON_ERROR = ("fail", "skip")


@dataclass(frozen=True, slots=True, kw_only=True)
class MLflowSettings:
    """Resolved tracker settings.

    ``uri_source`` says where the tracking URI came from (``config``, ``MLFLOW_TRACKING_URI``
    or ``default``) so error messages can point at the place to fix.
    """

    tracking_uri: str
    registry_uri: str | None = None
    experiment_name: str | None = None
    artifact_location: str | None = None
    on_error: str = "fail"
    timeout_s: int = 10
    retries: int = 2
    autolog: bool | Mapping[str, Any] = False
    uri_source: str = "default"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_http(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    def display_uri(self) -> str:
        """The tracking URI without credentials, safe to print and to store as a link."""
        return redact(self.tracking_uri)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MLflowSettings:
        unknown = sorted(set(config) - set(KEYS))
        if unknown:
            first = unknown[0]
            raise BridgeError(
                f"experiment_tracker (flavor mlflow) has no option '{first}'."
                + did_you_mean(first, KEYS)
                + f" Options: {', '.join(k for k in KEYS if k != 'home')}."
            )
        on_error = str(config.get("on_error", "fail"))
        if on_error not in ON_ERROR:
            raise BridgeError(
                f"experiment_tracker.on_error is {on_error!r}; use 'fail' (a tracker outage fails "
                "the run) or 'skip' (the run goes on and records that tracking was skipped)."
            )
        timeout_s = _positive_int(config, "timeout", 10)
        retries = _positive_int(config, "retries", 2)
        tracking_uri, source = _tracking_uri(config)
        artifact_location = config.get("artifact_location")
        if artifact_location is None and tracking_uri.startswith("sqlite:///"):
            # MLflow would put artifacts in ./mlruns of whatever the working directory is;
            # keep them beside the database instead.
            db = Path(tracking_uri[len("sqlite:///") :])
            artifact_location = (db.parent / "mlflow-artifacts").resolve().as_uri()
        return cls(
            tracking_uri=tracking_uri,
            registry_uri=config.get("registry_uri"),
            experiment_name=config.get("experiment_name"),
            artifact_location=artifact_location,
            on_error=on_error,
            timeout_s=timeout_s,
            retries=retries,
            autolog=config.get("autolog", False),
            uri_source=source,
        )


@dataclass(frozen=True)
class MLflowStepSettings(StepSettings):
    """A step's ``mlflow`` block (entry point ``mlflow`` in the group ``zenml_bridge.settings``).

    Attributes:
        autolog: ``true`` turns ``mlflow.autolog()`` on for the step, a mapping passes options
            to it (``{"log_models": false}``), ``false`` turns it off; unset, the tracker's
            ``autolog`` option decides.

    Example:
        >>> MLflowStepSettings.parse({"autolog": {"log_models": False}}).autolog_options(False)
        {'log_models': False}
    """

    key = "mlflow"
    autolog: bool | dict[str, Any] | None = None

    def autolog_options(self, default: bool | Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The options of ``mlflow.autolog`` for the step, or None when it stays off."""
        value = default if self.autolog is None else self.autolog
        if value is True:
            return {}
        if isinstance(value, Mapping):
            return value
        return None


def default_tracking_uri(home: str | os.PathLike[str] | None = None) -> str:
    """``sqlite:///<home>/mlflow.db`` beside ``metadata.db`` (MLflow 3 refuses bare file stores).

    ``home`` is the project's ``.zenml_bridge/`` folder (found like git), else the default one.
    """
    folder = Path(home) if home else zenml_home()
    folder.mkdir(parents=True, exist_ok=True)
    return "sqlite:///" + str((folder / "mlflow.db").resolve())


def zenml_home() -> Path:
    """The ``.zenml_bridge/`` folder the core records runs in (same lookup as the core)."""
    from zenml_bridge.config import DIR_NAME, default_home, find_project

    project = find_project()
    return project / DIR_NAME if project else default_home()


def redact(uri: str) -> str:
    """Drop ``user:password@`` from a URI."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _tracking_uri(config: Mapping[str, Any]) -> tuple[str, str]:
    if config.get("tracking_uri"):
        uri = str(config["tracking_uri"])
        source = "config"
    elif os.environ.get("MLFLOW_TRACKING_URI"):
        uri = os.environ["MLFLOW_TRACKING_URI"]
        source = "MLFLOW_TRACKING_URI"
    else:
        return default_tracking_uri(config.get("home")), "default"
    if uri.startswith("file:") or ("://" not in uri and not uri.startswith("databricks")):
        raise BridgeError(
            f"experiment_tracker.tracking_uri {uri!r} (from {source}) is a plain folder, which "
            "MLflow 3 refuses as a tracking store. Use sqlite:///path/to/mlflow.db, an MLflow "
            "server URL such as http://127.0.0.1:5000, or leave it out for the default "
            "sqlite:/// database in .zenml_bridge/."
        )
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        relative = uri[len("sqlite:///") :]
        if relative and relative != ":memory:":  # like metadata_url: relative to .zenml_bridge/
            uri = "sqlite:///" + str(
                (Path(config.get("home") or zenml_home()) / relative).resolve()
            )
    return uri, source


def _positive_int(config: Mapping[str, Any], key: str, default: int) -> int:
    value = config.get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise BridgeError(
            f"experiment_tracker.{key} is {value!r}; give a whole number >= 0 (default {default})."
        )
    return number
