"""What users write for Evidently, made into Evidently objects: presets, metrics, tests, columns.

A preset or metric is a name (``"DataDriftPreset"``, ``"MissingValueCount"``) or a dict with
``name`` and its options (``{"name": "ValueDrift", "column": "age"}``); in a pipeline these are
plain parameters, checked when the pipeline is built. A test is a metric with conditions:
``{"name": "MissingValueCount", "column": "age", "lte": 0}``, or a preset name (its tests are
derived from the reference data). Called directly, Evidently objects are accepted as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zenml_bridge.errors import BridgeError, did_you_mean

#: Test conditions: ``{"lte": 0}`` is Evidently's ``lte(0)``.
CONDITIONS = ("eq", "not_eq", "gt", "gte", "lt", "lte", "is_in", "not_in")

#: Options of ``column_mapping`` (Evidently's DataDefinition), with the names of Evidently 0.4's
#: ColumnMapping that mean the same.
ALIASES = {
    "numerical_features": "numerical_columns",
    "categorical_features": "categorical_columns",
    "text_features": "text_columns",
    "datetime_features": "datetime_columns",
    "datetime": "timestamp",
    "id": "id_column",
}
MAPPING_KEYS = (
    "id_column", "timestamp", "numerical_columns", "categorical_columns", "text_columns",
    "datetime_columns",
)  # fmt: skip


def known_names() -> tuple[list[str], list[str]]:
    """``(presets, metrics)``: the names Evidently exports."""
    from evidently import metrics, presets

    def public(module: Any) -> list[str]:
        return sorted(
            n for n in dir(module) if n[:1].isupper() and isinstance(getattr(module, n), type)
        )

    return public(presets), public(metrics)


def check_specs(step: str, option: str, specs: Any, *, conditions: bool = False) -> list[Any]:
    """``specs`` as a list, each name known; a BridgeError naming step, option and name."""
    if specs is None or isinstance(specs, str | Mapping):
        specs = [] if specs is None else [specs]
    if not isinstance(specs, list | tuple) or not specs:
        raise BridgeError(
            f"Step '{step}': {option}= needs a non-empty list of preset or metric names, e.g. "
            f"{option}=['DataDriftPreset']."
        )
    presets, metrics = known_names()
    for spec in specs:
        if isinstance(spec, str):
            name = spec
        elif isinstance(spec, Mapping):
            given = spec.get("name")
            if not isinstance(given, str):
                raise BridgeError(
                    f"Step '{step}': the {option} entry {dict(spec)!r} has no 'name'. Write it "
                    "as {'name': 'ValueDrift', 'column': 'age'}."
                )
            name = given
            unknown = sorted(k for k in spec if k in CONDITIONS and not conditions)
            if unknown:
                raise BridgeError(
                    f"Step '{step}': {option} entry {name!r} has test conditions {unknown}; "
                    "conditions belong in evidently_tests(tests=[...])."
                )
        else:
            continue  # an Evidently object, given directly
        if name not in presets and name not in metrics:
            raise BridgeError(
                f"Step '{step}': unknown Evidently preset or metric {name!r} in {option}."
                + did_you_mean(name, presets + metrics)
                + f" Presets: {', '.join(presets)}; metrics are listed in evidently.metrics."
            )
    return list(specs)


def build(step: str, option: str, specs: Any, *, conditions: bool = False) -> list[Any]:
    """Evidently preset and metric objects for ``specs`` (see :func:`check_specs`)."""
    from evidently import metrics, presets

    built = []
    for spec in check_specs(step, option, specs, conditions=conditions):
        if not isinstance(spec, str | Mapping):
            built.append(spec)
            continue
        options = {} if isinstance(spec, str) else {k: v for k, v in spec.items() if k != "name"}
        name = spec if isinstance(spec, str) else str(spec["name"])
        tests = _tests(options) if conditions else None
        cls = getattr(presets, name, None) or getattr(metrics, name)
        if tests:
            options["tests"] = tests
        try:
            built.append(cls(**options))
        except Exception as exc:  # pydantic and Evidently raise several types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BridgeError(
                f"Step '{step}': {option} entry {name!r} with options {sorted(options)} could "
                f"not be built: {first}. Check the options of evidently.{name}."
            ) from None
    return built


def _tests(options: dict[str, Any]) -> list[Any]:
    import evidently.tests as conditions

    found = []
    for key in CONDITIONS:
        if key in options:
            found.append(getattr(conditions, key)(options.pop(key)))
    return found


def data_definition(step: str, mapping: Mapping[str, Any] | None) -> Any:
    """Evidently's DataDefinition for ``column_mapping`` (None: Evidently infers the types)."""
    if mapping is None:
        return None
    if not isinstance(mapping, Mapping):
        raise BridgeError(
            f"Step '{step}': column_mapping must be a dict such as "
            "{'numerical_columns': [...], 'categorical_columns': [...]}, not "
            f"{type(mapping).__name__}."
        )
    options = {ALIASES.get(k, k): v for k, v in mapping.items()}
    unknown = sorted(set(options) - set(MAPPING_KEYS))
    if unknown:
        raise BridgeError(
            f"Step '{step}': column_mapping has unknown key {unknown[0]!r}."
            + did_you_mean(unknown[0], [*MAPPING_KEYS, *ALIASES])
            + f" Keys: {', '.join(MAPPING_KEYS)}."
        )
    from evidently import DataDefinition

    return DataDefinition(**options)


def mapped_columns(definition: Any) -> list[str]:
    """Every column a DataDefinition names."""
    if definition is None:
        return []
    names: list[str] = []
    for key in MAPPING_KEYS:
        value = getattr(definition, key, None)
        if isinstance(value, str):
            names.append(value)
        elif value:
            names.extend(value)
    return names
