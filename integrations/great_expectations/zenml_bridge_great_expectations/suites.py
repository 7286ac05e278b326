"""Expectation suites from what users give: a GX ``ExpectationSuite``, a dict, or a JSON file.

Every problem is a :class:`~zenml_bridge.BridgeError` naming the step, the suite and the fix.
GX itself is imported only when a suite is built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zenml_bridge.errors import BridgeError, did_you_mean

#: Expectation kwargs that name a column of the data.
COLUMN_KWARGS = ("column", "column_A", "column_B")
#: Expectation kwargs that name several columns.
COLUMN_LIST_KWARGS = ("column_list",)
#: Expectations whose point is to check whether a column is there: never a configuration error.
EXISTENCE_CHECKS = frozenset(
    {
        "expect_column_to_exist",
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
    }
)


def quiet_gx() -> None:
    """No usage statistics from GX here (set ``GX_ANALYTICS_ENABLED=true`` to allow them)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def suite_dict(step: str, suite: Any) -> dict[str, Any]:
    """The suite as GX's JSON dict, checked by building it with GX.

    Args:
        step: the step's name, for messages.
        suite: a ``great_expectations.ExpectationSuite``, a dict in GX's suite JSON form
            (``{"name": ..., "expectations": [{"type": ..., "kwargs": {...}}, ...]}``), or the
            path (``str`` or ``Path``) of a JSON file holding that dict.
    """
    if suite is None:
        raise BridgeError(
            f"Step '{step}': no expectation suite given. Pass suite= as a GX ExpectationSuite, "
            "a dict, or the path of a suite JSON file (gx_profile(df) builds one)."
        )
    if isinstance(suite, str | os.PathLike):
        return _checked(step, _read_file(step, Path(suite)), f"suite file {str(suite)!r}")
    if isinstance(suite, Mapping):
        return _checked(step, dict(suite), "the suite dict")
    to_json = getattr(suite, "to_json_dict", None)
    if type(suite).__name__ == "ExpectationSuite" and callable(to_json):
        return _checked(step, dict(to_json()), f"suite {getattr(suite, 'name', '')!r}")
    raise BridgeError(
        f"Step '{step}': suite= is a {type(suite).__name__}; it must be a GX ExpectationSuite, a "
        "dict, or the path of a suite JSON file."
    )


def build_suite(step: str, data: Mapping[str, Any]) -> Any:
    """A GX ``ExpectationSuite`` from a dict that :func:`suite_dict` returned."""
    quiet_gx()
    from great_expectations.core.expectation_suite import ExpectationSuite

    fields = {k: data[k] for k in ("name", "expectations", "meta", "notes") if k in data}
    fields.setdefault("name", "suite")
    unknown = _unknown_type(fields.get("expectations") or [])
    if unknown:
        raise BridgeError(
            f"Step '{step}': suite {fields['name']!r} is not a valid expectation suite: "
            f"{unknown} Fix the expectation's 'type'."
        )
    try:
        suite = ExpectationSuite(**fields)
    except Exception as exc:  # GX raises several types; the message is what helps
        raise BridgeError(
            f"Step '{step}': suite {fields['name']!r} is not a valid expectation suite: "
            f"{_first_line(exc)}. Check the expectation's kwargs against the GX docs of its type."
        ) from None
    # GX logs an expectation it cannot build and leaves it out: never validate with fewer.
    if len(suite.expectations) != len(fields.get("expectations") or []):
        built = {e.expectation_type for e in suite.expectations}
        dropped = [str(e.get("type")) for e in fields["expectations"] if e.get("type") not in built]
        raise BridgeError(
            f"Step '{step}': suite {fields['name']!r} is not a valid expectation suite: GX could "
            f"not build {', '.join(dropped) or 'some expectations'} (see the GX error above). "
            "Check the expectation's kwargs against the GX docs of its type."
        )
    return suite


def missing_columns(data: Mapping[str, Any], columns: list[str]) -> list[tuple[str, str]]:
    """``(expectation type, column)`` for each column the suite uses that ``columns`` lacks."""
    have = set(columns)
    missing: list[tuple[str, str]] = []
    for expectation in data.get("expectations", []):
        kind = str(expectation.get("type", ""))
        if kind in EXISTENCE_CHECKS:
            continue
        kwargs = expectation.get("kwargs", {})
        named = [kwargs[k] for k in COLUMN_KWARGS if k in kwargs]
        for key in COLUMN_LIST_KWARGS:
            named.extend(kwargs.get(key) or [])
        missing.extend((kind, str(c)) for c in named if c not in have)
    return missing


def _read_file(step: str, path: Path) -> dict[str, Any]:
    if not path.is_file():
        where = "is a folder" if path.is_dir() else "does not exist"
        raise BridgeError(
            f"Step '{step}': suite file '{path}' {where}. Give the path of a suite JSON file "
            "(e.g. one written with json.dump(suite.to_json_dict(), f))."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BridgeError(
            f"Step '{step}': suite file '{path}' is not JSON ({_first_line(exc)}). A suite file "
            'holds {"name": ..., "expectations": [{"type": ..., "kwargs": {...}}]}.'
        ) from None
    if not isinstance(data, dict):
        raise BridgeError(
            f"Step '{step}': suite file '{path}' holds a JSON {type(data).__name__}, not a suite "
            '(an object {"name": ..., "expectations": [...]}).'
        )
    return data


def _checked(step: str, data: dict[str, Any], what: str) -> dict[str, Any]:
    expectations = data.get("expectations")
    if not isinstance(expectations, list) or not all(
        isinstance(e, Mapping) and isinstance(e.get("type"), str) for e in expectations
    ):
        raise BridgeError(
            f"Step '{step}': {what} is not an expectation suite: it needs an 'expectations' list "
            'of {"type": "expect_...", "kwargs": {...}} objects'
            + (f" (it has keys {sorted(data)})." if data else " (it is empty).")
        )
    if not expectations:
        raise BridgeError(
            f"Step '{step}': {what} has no expectations, so it would pass any data. Add "
            "expectations, or build a suite from reference data with gx_profile(df)."
        )
    suite = build_suite(step, data)
    # GX's own JSON: defaults filled in, so equal suites give equal parameters (cache keys).
    checked: dict[str, Any] = dict(suite.to_json_dict())
    checked.pop("id", None)
    return checked


def _unknown_type(expectations: list[Any]) -> str | None:
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    known = list_registered_expectation_implementations()
    for expectation in expectations:
        kind = str(expectation.get("type", "")) if isinstance(expectation, Mapping) else ""
        if kind not in known:
            return f"expectation type {kind!r} is unknown.{did_you_mean(kind, known)}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
