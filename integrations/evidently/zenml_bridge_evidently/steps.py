"""Evidently steps: a report you can open, a drift gate, and test suites that gate.

Example:
    >>> from zenml_bridge import pipeline
    >>> from zenml_bridge_evidently.steps import drift_gate, evidently_report
    >>> @pipeline
    ... def monitored() -> None:
    ...     reference, current = load_reference(), load_current()          # doctest: +SKIP
    ...     evidently_report(reference, current, presets=["DataSummaryPreset"])  # doctest: +SKIP
    ...     drift, report = drift_gate(reference, current, threshold=0.3)  # doctest: +SKIP
    ...     retrain(current, after=drift)                                   # doctest: +SKIP

Each returns a :class:`~zenml_bridge.validation.ValidationReport`: Evidently's snapshot as
JSON with its HTML page as the visualization (``zenml-bridge artifacts show ID --open``).
Names of presets, metrics and ``column_mapping`` keys are checked when the pipeline is built.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Mapping
from typing import Annotated, Any

import pandas as pd
from zenml_bridge.errors import BridgeError
from zenml_bridge.validation import (
    ON_FAILURE,
    ValidationReport,
    ValidationStep,
    check_choice,
    check_frame,
    current_step_name,
    gate,
    plain_json,
    resolve_options,
)

from zenml_bridge_evidently.specs import build, check_specs, data_definition, mapped_columns

DEFAULT_PRESETS = ("DataDriftPreset", "DataSummaryPreset")

#: How many failed tests or drifted columns a gate message lists before "and N more".
MESSAGE_LIMIT = 8


def _check_literals(step_name: str, literals: dict[str, Any]) -> dict[str, Any]:
    """Names in presets/tests and column_mapping keys, checked when the pipeline is built."""
    for option in ("presets", "tests"):
        if option in literals:
            check_specs(step_name, option, literals[option], conditions=option == "tests")
    if literals.get("column_mapping") is not None:
        data_definition(step_name, literals["column_mapping"])
    for option in ("on_drift", "on_failure"):
        if literals.get(option) is not None:
            check_choice(step_name, option, literals[option], ON_FAILURE)
    return {}


def _checked_step(func: Any) -> ValidationStep:
    return ValidationStep(func, prepare=_check_literals)


@_checked_step
def evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    presets: list[Any] | None = None,
    column_mapping: dict[str, Any] | None = None,
) -> Annotated[ValidationReport, "report"]:
    """An Evidently report of ``current`` against ``reference``.

    Args:
        reference: the data the model was built on.
        current: the data to look at.
        presets: preset or metric names, or ``{"name": ..., **options}`` dicts (default:
            ``["DataDriftPreset", "DataSummaryPreset"]``).
        column_mapping: column roles (Evidently's DataDefinition): ``numerical_columns``,
            ``categorical_columns``, ``text_columns``, ``datetime_columns``, ``id_column``,
            ``timestamp``.
    """
    name = current_step_name("evidently_report")
    chosen = list(DEFAULT_PRESETS) if presets is None else presets
    snapshot = _run(name, reference, current, build(name, "presets", chosen), column_mapping)
    return _report(snapshot, kind="evidently.report", title="Evidently report", passed=True)


@_checked_step
def drift_gate(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    threshold: float | None = None,
    on_drift: str | None = None,
    columns: list[str] | None = None,
    method: str | None = None,
    column_mapping: dict[str, Any] | None = None,
) -> tuple[Annotated[dict[str, Any], "drift"], Annotated[ValidationReport, "report"]]:
    """Share of drifted columns of ``current`` against ``reference``; gate when too large.

    Args:
        threshold: the largest share of drifted columns that passes (default 0.3).
        on_drift: ``"stop"`` (default) stops the pipeline naming the drifted columns, with
            both outputs kept; ``"fail"`` fails the step; ``"warn"`` passes and records the
            drift in the step's metadata.
        columns: the columns to test (default: all).
        method: Evidently's drift test for every column (e.g. ``"ks"``, ``"psi"``,
            ``"wasserstein"``); default: Evidently's choice per column type.
        column_mapping: column roles, as for :func:`evidently_report`.

    Returns:
        ``{"drift_share": float, "drifted_columns": [...], "threshold": float,
        "drift_detected": bool}`` and the report.
    """
    name = current_step_name("drift_gate")
    options = _options(threshold=threshold, on_failure=on_drift)
    share_limit = float(options["threshold"])
    if not 0.0 <= share_limit <= 1.0:
        raise BridgeError(f"Step '{name}': threshold={share_limit!r} must be a share in [0, 1].")
    check_choice(name, "on_drift", options["on_failure"], ON_FAILURE)
    # The page's "dataset drift" verdict then agrees with the gate's threshold.
    preset: dict[str, Any] = {"name": "DataDriftPreset", "drift_share": share_limit}
    if columns is not None:
        preset["columns"] = list(columns)
    if method is not None:
        preset["method"] = method
    built = build(name, "presets", [preset])
    snapshot = _run(name, reference, current, built, column_mapping, include_tests=True,
                    need=list(columns or []))  # fmt: skip
    data = plain_json(snapshot.dict())
    drifted = sorted(
        str(t["metric_config"]["params"]["column"])
        for t in data.get("tests", [])
        if t.get("status") == "FAIL" and "ValueDrift" in str(t["metric_config"]["params"]["type"])
    )
    count = next(
        m["value"] for m in data["metrics"] if "DriftedColumnsCount" in m["config"]["type"]
    )
    share = float(count["share"])
    drift = {
        "drift_share": share,
        "drifted_columns": drifted,
        "threshold": share_limit,
        "drift_detected": share > share_limit,
    }
    report = _report(
        snapshot, kind="evidently.drift", title="Evidently data drift", passed=share <= share_limit,
        summary={**drift, "reason": _drift_reason(share, share_limit, drifted)},
    )  # fmt: skip
    gate(name, options["on_failure"], report, str(report.summary["reason"]), (drift, report))
    return drift, report


@_checked_step
def evidently_tests(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    tests: list[Any] | None = None,
    on_failure: str | None = None,
    column_mapping: dict[str, Any] | None = None,
) -> Annotated[ValidationReport, "report"]:
    """Run Evidently tests on ``current``; gate when one fails.

    Args:
        tests: metrics with conditions, ``{"name": "MissingValueCount", "column": "age",
            "lte": 0}`` (conditions: eq, not_eq, gt, gte, lt, lte, is_in, not_in), or preset
            names whose tests Evidently derives from the reference (``"DataSummaryPreset"``).
        on_failure: ``"stop"`` (default), ``"fail"`` or ``"warn"``, as for :func:`drift_gate`.
        column_mapping: column roles, as for :func:`evidently_report`.
    """
    name = current_step_name("evidently_tests")
    options = _options(on_failure=on_failure)
    check_choice(name, "on_failure", options["on_failure"], ON_FAILURE)
    built = build(name, "tests", tests, conditions=True)
    snapshot = _run(name, reference, current, built, column_mapping, include_tests=True)
    results: list[dict[str, Any]] = plain_json(snapshot.dict()).get("tests", [])
    failed = [
        {"name": t.get("name"), "description": t.get("description"), "status": t.get("status")}
        for t in results
        if t.get("status") in ("FAIL", "ERROR")
    ]
    listed = "; ".join(str(f["description"] or f["name"]) for f in failed[:MESSAGE_LIMIT])
    more = f"; and {len(failed) - MESSAGE_LIMIT} more" if len(failed) > MESSAGE_LIMIT else ""
    reason = (
        f"{len(failed)} of {len(results)} Evidently tests failed: {listed}{more}"
        if failed
        else f"all {len(results)} Evidently tests passed"
    )
    report = _report(
        snapshot, kind="evidently.tests", title="Evidently tests", passed=not failed,
        summary={"tests": len(results), "failed": failed, "reason": reason},
    )  # fmt: skip
    gate(name, options["on_failure"], report, reason, report)
    return report


def _run(
    step_name: str,
    reference: Any,
    current: Any,
    metrics: list[Any],
    column_mapping: Mapping[str, Any] | None,
    *,
    include_tests: bool = False,
    need: list[str] | None = None,
) -> Any:
    check_frame(step_name, "reference", reference)
    check_frame(step_name, "current", current)
    definition = data_definition(step_name, column_mapping)
    wanted = [*(need or []), *mapped_columns(definition)]
    for label, frame in (("reference", reference), ("current", current)):
        columns = [str(c) for c in frame.columns]
        missing = [c for c in dict.fromkeys(wanted) if c not in columns]
        if label == "current":
            missing += [str(c) for c in reference.columns if str(c) not in columns]
        if missing:
            raise BridgeError(
                f"Step '{step_name}': the {label} data has no column(s) "
                f"{', '.join(map(repr, dict.fromkeys(missing)))} (it has "
                f"{', '.join(map(repr, columns))}). Give both frames the same columns, or fix "
                "columns=/column_mapping."
            )
    from evidently import Dataset, Report

    if definition is not None:
        reference = Dataset.from_pandas(reference, data_definition=definition)
        current = Dataset.from_pandas(current, data_definition=definition)
    return Report(metrics, include_tests=include_tests).run(
        reference_data=reference, current_data=current
    )


def _report(
    snapshot: Any, *, kind: str, title: str, passed: bool, summary: Mapping[str, Any] | None = None
) -> ValidationReport:
    page = snapshot.get_html_str(as_iframe=False)
    # Evidently's page has no <title>; a browser tab and our listings show this one.
    page = page.replace("<head>", f"<head>\n<title>{html_lib.escape(title)}</title>", 1)
    return ValidationReport(
        kind=kind,
        title=title,
        passed=passed,
        summary=dict(summary or {}),
        result=plain_json(snapshot.dict()),
        html=page,
    )


def _drift_reason(share: float, limit: float, drifted: list[str]) -> str:
    listed = ", ".join(repr(c) for c in drifted[:MESSAGE_LIMIT])
    more = f" and {len(drifted) - MESSAGE_LIMIT} more" if len(drifted) > MESSAGE_LIMIT else ""
    verdict = "exceeds" if share > limit else "is within"
    return (
        f"drift share {share:.2f} {verdict} the threshold {limit:.2f}; drifted columns: "
        f"{listed or 'none'}{more}"
    )


#: Built-in defaults of the options a step argument, settings or the stack may set.
DEFAULTS = {"threshold": 0.3, "on_failure": "stop"}


def _options(**given: Any) -> dict[str, Any]:
    from zenml_bridge_evidently.settings import EvidentlySettings

    return resolve_options(given, DEFAULTS, EvidentlySettings, "evidently")
