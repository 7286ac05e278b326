"""``SeldonDeployment`` manifests (machinelearning.seldon.io/v1) for a model artifact.

Two shapes, both a single-model graph answering the Seldon protocol
(``POST /api/v1.0/predictions`` with ``{"data": {"ndarray": ...}}``):

- **prepackaged** (``SKLEARN_SERVER``): Seldon's scikit-learn server downloads the artifact
  folder from ``modelUri`` (it reads ``model.joblib``, which is what the scikit-learn
  materializer writes) with the credentials of the Secret named by ``envSecretRefName``.
- **custom** (``image=...``): the user's image runs seldon-core's Python wrapper with
  :class:`zenml_bridge_seldon.model.SeldonModel`, which reads the artifact from ``model_uri``
  and verifies its sha256 before unpickling; secrets come in with ``envFrom``.

:func:`validate_manifest` checks what the CRD and Seldon's admission webhook check (required
fields, enums, Kubernetes DNS-1123 names, a model URI for a prepackaged server, a container for
a custom unit) so a bad manifest fails here and not at ``kubectl apply``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml
from zenml_bridge.errors import BridgeError
from zenml_bridge.materializers.base import Materializer, join

from zenml_bridge_seldon.model import INTERFACE_NAME, METHODS

API_VERSION = "machinelearning.seldon.io/v1"
KIND = "SeldonDeployment"
#: Prepackaged servers this integration emits (the operator knows more; these take our files).
PREPACKAGED = ("SKLEARN_SERVER", "MLFLOW_SERVER")
IMPLEMENTATIONS = ("auto", "custom", *PREPACKAGED)
#: The graph node (and container) name: one model per deployment.
UNIT_NAME = "model"
MANIFEST_FILE = "seldondeployment.yaml"

# Enums of the CRD (operator/apis/machinelearning.seldon.io/v1/seldondeployment_types.go).
UNIT_TYPES = ("UNKNOWN_TYPE", "ROUTER", "COMBINER", "MODEL", "TRANSFORMER", "OUTPUT_TRANSFORMER")
ENDPOINT_TYPES = ("REST", "GRPC")
PARAMETER_TYPES = ("INT", "FLOAT", "DOUBLE", "STRING", "BOOL")
PROTOCOLS = ("seldon", "tensorflow", "kfserving", "v2")

# A DNS-1123 label: what Kubernetes allows for Service and container names (<= 63 characters).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Schemes a cluster's storage initializer can read (rclone-based in Seldon Core 1.x).
CLUSTER_SCHEMES = ("s3://", "gs://", "gcs://", "az://", "abfs://", "https://", "pvc://")


@dataclass(frozen=True)
class SeldonManifest:
    """A SeldonDeployment as a value: the manifest dict plus where its model comes from.

    ``to_yaml()`` is what ``kubectl apply -f`` takes; the artifact stores exactly that text.
    """

    manifest: Mapping[str, Any]
    warnings: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    def to_yaml(self) -> str:
        return yaml.safe_dump(dict(self.manifest), sort_keys=False, default_flow_style=False)


def k8s_name(text: str) -> str:
    """``text`` as a DNS-1123 label: lowercase, ``-`` for anything else, at most 63 characters.

    A name longer than 63 is cut and ends with 8 hex digits of its sha256 so two long names
    stay apart.

    Example:
        >>> k8s_name("Training_Pipeline.v2")
        'training-pipeline-v2'
    """
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"
    if len(label) > 63:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        label = f"{label[:54].rstrip('-')}-{digest}"
    return label


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS-1123 label, or None."""
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > 63:
        return f"it has {len(name)} characters (at most 63)"
    if not _DNS_LABEL.match(name):
        return (
            "only lowercase letters, digits and '-' are allowed, starting and ending alphanumeric"
        )
    return None


def is_cluster_uri(uri: str) -> bool:
    """True when a cluster can read ``uri`` (an object store or PVC, not this machine's disk)."""
    return uri.startswith(CLUSTER_SCHEMES)


def build_manifest(
    *,
    name: str,
    model_uri: str,
    model_sha256: str = "",
    image: str | None = None,
    implementation: str = "auto",
    namespace: str | None = None,
    replicas: int = 1,
    method: str = "predict",
    secret: str | None = None,
    service_account: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> SeldonManifest:
    """The SeldonDeployment serving the model artifact at ``model_uri``.

    Args:
        name: the SeldonDeployment's name (a DNS-1123 label; see :func:`k8s_name`).
        model_uri: the artifact folder as the cluster reads it (``s3://...``, ``gs://...``).
        model_sha256: the artifact's content hash (custom image: checked before loading).
        image: the user's image with zenml-bridge-seldon installed; implies ``custom``.
        implementation: ``auto`` (``custom`` with an image, else ``SKLEARN_SERVER``),
            ``SKLEARN_SERVER``, ``MLFLOW_SERVER`` (``model_uri`` is an MLflow model folder)
            or ``custom``.
        namespace: the Kubernetes namespace (omitted: ``kubectl``'s current one).
        replicas: pods of the predictor.
        method: what a prediction answers with: ``predict``, ``predict_proba`` or
            ``decision_function``.
        secret: the Kubernetes Secret holding the storage credentials (never the values).
        service_account: a ServiceAccount with access to the bucket (IRSA / workload identity).
        labels: extra metadata labels.

    Raises:
        BridgeError: every problem with the arguments at once.
    """
    problems: list[str] = []
    chosen = implementation
    if implementation not in IMPLEMENTATIONS:
        problems.append(
            f"implementation {implementation!r} is not one of {', '.join(IMPLEMENTATIONS)}"
        )
    elif implementation == "auto":
        chosen = "custom" if image else "SKLEARN_SERVER"
    if chosen == "custom" and not image:
        problems.append(
            "implementation 'custom' needs image=... (an image with zenml-bridge-seldon)"
        )
    if chosen in PREPACKAGED and image:
        problems.append(
            f"image={image!r} is for a custom model; {chosen} runs Seldon's own image "
            "(drop image= or use implementation='custom')"
        )
    if method not in METHODS:
        problems.append(f"method {method!r} is not one of {', '.join(METHODS)}")
    if chosen == "MLFLOW_SERVER" and method != "predict":
        problems.append("MLFLOW_SERVER answers with the model's predict only (method='predict')")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        problems.append(f"replicas must be a whole number >= 1, not {replicas!r}")
    for what, value in (("name", name), ("namespace", namespace), ("secret", secret)):
        if value is not None and (reason := name_problem(value)):
            problems.append(f"{what} {value!r} is not a valid Kubernetes name: {reason}")
    if not model_uri:
        problems.append("model_uri is empty")
    if problems:
        raise BridgeError(
            "Cannot build the SeldonDeployment: "
            + "; ".join(problems)
            + ". Fix these arguments of seldon_manifest()."
        )

    unit: dict[str, Any] = {"name": UNIT_NAME, "type": "MODEL"}
    predictor: dict[str, Any] = {"name": "default", "replicas": replicas}
    if chosen in PREPACKAGED:
        unit["implementation"] = chosen
        unit["modelUri"] = model_uri
        if chosen == "SKLEARN_SERVER":
            # SKLEARN_SERVER answers predict_proba unless told otherwise.
            unit["parameters"] = [{"name": "method", "type": "STRING", "value": method}]
        if secret:
            unit["envSecretRefName"] = secret
        if service_account:
            unit["serviceAccountName"] = service_account
    else:
        unit["endpoint"] = {"type": "REST"}
        unit["parameters"] = [
            {"name": "model_uri", "type": "STRING", "value": model_uri},
            {"name": "model_sha256", "type": "STRING", "value": model_sha256},
            {"name": "method", "type": "STRING", "value": method},
        ]
        container: dict[str, Any] = {
            "name": UNIT_NAME,
            "image": image,
            "command": ["seldon-core-microservice", INTERFACE_NAME, "--service-type", "MODEL"],
        }
        if secret:
            container["envFrom"] = [{"secretRef": {"name": secret}}]
        pod: dict[str, Any] = {"containers": [container]}
        if service_account:
            pod["serviceAccountName"] = service_account
        predictor["componentSpecs"] = [{"spec": pod}]
    predictor["graph"] = unit

    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {"app.kubernetes.io/managed-by": "zenml-bridge", **(labels or {})}
    manifest = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {"protocol": "seldon", "predictors": [predictor]},
    }
    warnings: list[str] = []
    if not is_cluster_uri(model_uri):
        warnings.append(
            f"The model URI {model_uri} is on this machine's disk: a cluster cannot read it. "
            "Use an artifact store the cluster reads (s3://, gs://) for a cluster deployment."
        )
    problems = validate_manifest(manifest)
    if problems:  # a bug here, not the user's: say so plainly
        raise BridgeError("zenml-bridge built an invalid SeldonDeployment: " + "; ".join(problems))
    return SeldonManifest(manifest=manifest, warnings=tuple(warnings))


def validate_manifest(manifest: Mapping[str, Any]) -> list[str]:
    """Every way ``manifest`` breaks the SeldonDeployment CRD or Seldon's webhook ([] if none).

    Checks the fields the CRD requires (``spec.predictors[].name``, ``.graph``, ``.graph.name``,
    parameters' ``name``/``value``/``type``), its enums, DNS-1123 names for everything that
    becomes a Kubernetes object name, unique predictor names, a ``modelUri`` for a prepackaged
    server and a container named after each custom graph unit.

    Example:
        >>> validate_manifest({"apiVersion": API_VERSION, "kind": KIND, "metadata": {}})
        ['metadata.name is required', 'spec is required']
    """
    problems: list[str] = []
    if not isinstance(manifest, Mapping):
        return [f"the manifest is a {type(manifest).__name__}, not a mapping"]
    if manifest.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion must be {API_VERSION}, not {manifest.get('apiVersion')!r}")
    if manifest.get("kind") != KIND:
        problems.append(f"kind must be {KIND}, not {manifest.get('kind')!r}")
    metadata = manifest.get("metadata")
    if not isinstance(metadata, Mapping) or "name" not in metadata:
        problems.append("metadata.name is required")
    else:
        _check_name(problems, "metadata.name", metadata["name"])
        if "namespace" in metadata:
            _check_name(problems, "metadata.namespace", metadata["namespace"])
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        problems.append("spec is required")
        return problems
    if "protocol" in spec and spec["protocol"] not in PROTOCOLS:
        problems.append(f"spec.protocol {spec['protocol']!r} is not one of {', '.join(PROTOCOLS)}")
    predictors = spec.get("predictors")
    if not isinstance(predictors, list) or not predictors:
        problems.append("spec.predictors must list at least one predictor")
        return problems
    seen: set[str] = set()
    for i, predictor in enumerate(predictors):
        where = f"spec.predictors[{i}]"
        if not isinstance(predictor, Mapping):
            problems.append(f"{where} must be a mapping")
            continue
        pname = predictor.get("name")
        if pname is None:
            problems.append(f"{where}.name is required")
        else:
            _check_name(problems, f"{where}.name", pname)
            if pname in seen:
                problems.append(f"{where}.name {pname!r} is used by another predictor")
            seen.add(pname)
        replicas = predictor.get("replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            problems.append(f"{where}.replicas must be a whole number >= 0")
        containers = _containers(problems, where, predictor.get("componentSpecs", []))
        graph = predictor.get("graph")
        if not isinstance(graph, Mapping):
            problems.append(f"{where}.graph is required")
            continue
        _check_unit(problems, f"{where}.graph", graph, containers)
    return problems


def _containers(problems: list[str], where: str, specs: Any) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    if not isinstance(specs, list):
        problems.append(f"{where}.componentSpecs must be a list")
        return found
    for j, spec in enumerate(specs):
        pod = spec.get("spec") if isinstance(spec, Mapping) else None
        containers = pod.get("containers") if isinstance(pod, Mapping) else None
        if not isinstance(containers, list) or not containers:
            problems.append(f"{where}.componentSpecs[{j}].spec.containers must list containers")
            continue
        for k, container in enumerate(containers):
            cwhere = f"{where}.componentSpecs[{j}].spec.containers[{k}]"
            if not isinstance(container, Mapping) or "name" not in container:
                problems.append(f"{cwhere}.name is required")
                continue
            _check_name(problems, f"{cwhere}.name", container["name"])
            found[str(container["name"])] = container
    return found


def _check_unit(
    problems: list[str],
    where: str,
    unit: Mapping[str, Any],
    containers: Mapping[str, Mapping[str, Any]],
) -> None:
    name = unit.get("name")
    if name is None:
        problems.append(f"{where}.name is required")
    else:
        _check_name(problems, f"{where}.name", name)
    if "type" in unit and unit["type"] not in UNIT_TYPES:
        problems.append(f"{where}.type {unit['type']!r} is not one of {', '.join(UNIT_TYPES)}")
    endpoint = unit.get("endpoint")
    if endpoint is not None and not isinstance(endpoint, Mapping):
        problems.append(f"{where}.endpoint must be a mapping")
    elif endpoint is not None and endpoint.get("type", "REST") not in ENDPOINT_TYPES:
        problems.append(f"{where}.endpoint.type must be REST or GRPC")
    for p, param in enumerate(unit.get("parameters", []) or []):
        for key in ("name", "value", "type"):
            if not isinstance(param, Mapping) or key not in param:
                problems.append(f"{where}.parameters[{p}].{key} is required")
        if isinstance(param, Mapping) and param.get("type") not in PARAMETER_TYPES:
            problems.append(
                f"{where}.parameters[{p}].type {param.get('type')!r} is not one of "
                f"{', '.join(PARAMETER_TYPES)}"
            )
        if isinstance(param, Mapping) and not isinstance(param.get("value"), str):
            problems.append(f"{where}.parameters[{p}].value must be a string")
    implementation = unit.get("implementation")
    if implementation is None or implementation == "UNKNOWN_IMPLEMENTATION":
        container = containers.get(str(name))
        if container is None:
            problems.append(
                f"{where}: no container named {name!r} in componentSpecs serves this unit"
            )
        elif not container.get("image"):
            problems.append(f"{where}: container {name!r} has no image")
    elif str(implementation).endswith("_SERVER") and not unit.get("modelUri"):
        problems.append(f"{where}.modelUri is required for the prepackaged {implementation}")
    for c, child in enumerate(unit.get("children", []) or []):
        if isinstance(child, Mapping):
            _check_unit(problems, f"{where}.children[{c}]", child, containers)
        else:
            problems.append(f"{where}.children[{c}] must be a mapping")


def _check_name(problems: list[str], where: str, value: Any) -> None:
    reason = name_problem(value)
    if reason:
        problems.append(f"{where} {value!r} is not a DNS-1123 label: {reason}")


class SeldonManifestMaterializer(Materializer):
    """A :class:`SeldonManifest` as ``seldondeployment.yaml`` (also its visualization)."""

    name: ClassVar[str] = "seldon.manifest"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = ("zenml_bridge_seldon.manifest.SeldonManifest",)

    def save(self, value: Any, folder: str, fs: Any) -> None:
        from zenml_bridge.materializers.base import prepare

        prepare(folder, fs)
        with fs.open(join(folder, MANIFEST_FILE), "w") as f:
            f.write(value.to_yaml())

    def load(self, folder: str, fs: Any) -> Any:
        with fs.open(join(folder, MANIFEST_FILE), "r") as f:
            manifest = yaml.safe_load(f.read())
        return SeldonManifest(manifest=manifest)

    def visualizations(self, value: Any) -> Mapping[str, str | bytes]:
        return {MANIFEST_FILE: value.to_yaml()}
