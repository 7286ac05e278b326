"""Great Expectations steps: validate a DataFrame against a suite, profile reference data.

Example:
    >>> from zenml_bridge import pipeline
    >>> from zenml_bridge_great_expectations.steps import gx_profile, gx_validate
    >>> @pipeline
    ... def checked(rows: int = 100) -> None:
    ...     suite = gx_profile(load_reference())                  # doctest: +SKIP
    ...     report = gx_validate(load_batch(rows), suite=suite)   # doctest: +SKIP
    ...     train(load_batch(rows), after=report)                 # doctest: +SKIP

``gx_validate`` with ``on_failure="stop"`` (the default) stops the run when an expectation
fails: the report is stored, the steps downstream are skipped and the run ends ``stopped``.
A suite given as a literal (a dict, a GX suite, a JSON file's path) is read when the pipeline
is built, so the run carries the suite itself: its content is part of the cache key and a
worker on another machine needs no copy of the file.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Mapping
from typing import Annotated, Any

import pandas as pd
from zenml_bridge import step
from zenml_bridge.errors import BridgeError, did_you_mean
from zenml_bridge.validation import (
    ON_FAILURE,
    ValidationReport,
    ValidationStep,
    check_choice,
    check_frame,
    current_step_name,
    gate,
    resolve_options,
)

from zenml_bridge_great_expectations.profile import profile_expectations
from zenml_bridge_great_expectations.suites import (
    build_suite,
    missing_columns,
    quiet_gx,
    suite_dict,
)

#: GX result formats (how much detail each expectation result keeps).
RESULT_FORMATS = ("BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE")

#: How many failed expectations a gate message lists before "and N more".
MESSAGE_LIMIT = 5


def _literal_suite(step_name: str, literals: dict[str, Any]) -> dict[str, Any]:
    """A literal suite (path, GX suite, dict) becomes its checked JSON dict at build time;
    literal option values are checked then too."""
    for option, allowed in (("on_failure", ON_FAILURE), ("result_format", RESULT_FORMATS)):
        if literals.get(option) is not None:
            check_choice(step_name, option, literals[option], allowed)
    suite = literals.get("suite")
    return {} if suite is None else {"suite": suite_dict(step_name, suite)}


def _suite_step(func: Any) -> ValidationStep:
    return ValidationStep(func, prepare=_literal_suite)


@_suite_step
def gx_validate(
    df: pd.DataFrame,
    suite: Any = None,
    on_failure: str | None = None,
    result_format: str | None = None,
) -> Annotated[ValidationReport, "validation"]:
    """Validate ``df`` against an expectation suite; stop, fail or warn when it fails.

    Args:
        df: the data to check.
        suite: a GX ``ExpectationSuite``, a dict in GX's suite JSON form, the path of a suite
            JSON file, or the output of :func:`gx_profile`.
        on_failure: ``"stop"`` (the default unless step settings or the stack's
            ``data_validator`` say otherwise) stops the pipeline with the failed expectations and
            their columns as the reason (the report is kept, downstream steps are skipped);
            ``"fail"`` fails the step; ``"warn"`` passes and records the failure in the step's
            metadata (``validation_failed``, ``validation_reason``).
        result_format: GX's detail per expectation: ``BOOLEAN_ONLY``, ``BASIC``, ``SUMMARY``
            (the default) or ``COMPLETE``.

    Returns:
        The validation report: GX's validation result as JSON, GX's data-docs page of it as
        the visualization (``report.html``).
    """
    name = current_step_name("gx_validate")
    options = _options(on_failure=on_failure, result_format=result_format, data_docs=None)
    check_choice(name, "on_failure", options["on_failure"], ON_FAILURE)
    check_choice(name, "result_format", options["result_format"], RESULT_FORMATS)
    check_frame(name, "df", df)
    data = suite_dict(name, suite)
    report = validate_frame(name, df, data, result_format=options["result_format"])
    if options["data_docs"]:
        _write_data_docs(name, report)
    gate(name, options["on_failure"], report, str(report.summary["reason"]), report)
    return report


#: Built-in defaults of the options a step argument, settings or the stack may set.
DEFAULTS = {"on_failure": "stop", "result_format": "SUMMARY", "data_docs": True}


def _options(**given: Any) -> dict[str, Any]:
    from zenml_bridge_great_expectations.settings import GreatExpectationsSettings

    return resolve_options(given, DEFAULTS, GreatExpectationsSettings, "great_expectations")


@step
def gx_profile(
    df: pd.DataFrame,
    name: str = "profile",
    max_categories: int = 20,
    range_margin: float = 0.0,
    null_tolerance: float = 0.0,
) -> Annotated[Any, "suite"]:
    """Build an expectation suite from reference data, for :func:`gx_validate`.

    Per column: it exists; its values keep the reference's type family (numbers, booleans,
    strings); the null share stays at most the reference's (plus ``null_tolerance``); numbers
    stay within the reference's range (widened by ``range_margin`` times its width); a
    non-float column with at most ``max_categories`` distinct values keeps to that set. The
    table keeps exactly its columns.

    Returns:
        A GX ``ExpectationSuite`` (stored as ``suite.json``).
    """
    where = current_step_name("gx_profile")
    check_frame(where, "df", df)
    for option, value in (("range_margin", range_margin), ("null_tolerance", null_tolerance)):
        if not 0.0 <= float(value) <= 1.0:
            raise BridgeError(
                f"Step '{where}': {option}={value!r} must be between 0 and 1 (a share)."
            )
    expectations = profile_expectations(
        df,
        max_categories=int(max_categories),
        range_margin=float(range_margin),
        null_tolerance=float(null_tolerance),
    )
    return build_suite(where, {"name": name, "expectations": expectations})


def validate_frame(
    step_name: str, df: pd.DataFrame, suite: Mapping[str, Any], *, result_format: str = "SUMMARY"
) -> ValidationReport:
    """Run GX on ``df`` with ``suite`` (a dict from :func:`suite_dict`) and build the report."""
    missing = missing_columns(suite, [str(c) for c in df.columns])
    if missing:
        columns = sorted({c for _, c in missing})
        uses = ", ".join(f"'{c}' ({k})" for k, c in missing[:MESSAGE_LIMIT])
        raise BridgeError(
            f"Step '{step_name}': suite {suite.get('name')!r} uses column(s) the data does not "
            f"have: {uses}. The data has {', '.join(map(repr, map(str, df.columns)))}."
            f"{did_you_mean(columns[0], [str(c) for c in df.columns])} Rename the column or "
            "fix the suite (an expect_column_to_exist expectation checks presence on purpose)."
        )
    batch = (
        _context()
        .data_sources.add_pandas("zenml_bridge")
        .add_dataframe_asset(step_name)
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": df})
    )
    gx_suite = build_suite(step_name, suite)
    result = batch.validate(gx_suite, result_format=result_format)
    failed = [_failure(r) for r in result.results if not r.success]
    total = len(result.results)
    reason = f"suite {gx_suite.name!r} passed: {total} expectations met"
    if failed:
        listed = "; ".join(_describe(f) for f in failed[:MESSAGE_LIMIT])
        more = f"; and {len(failed) - MESSAGE_LIMIT} more" if len(failed) > MESSAGE_LIMIT else ""
        reason = (
            f"{len(failed)} of {total} expectations of suite {gx_suite.name!r} failed: "
            f"{listed}{more}"
        )
    title = f"{gx_suite.name} validation: Great Expectations"
    return ValidationReport(
        kind="great_expectations.validation",
        title=title,
        passed=bool(result.success),
        summary={
            "suite": gx_suite.name,
            "evaluated": total,
            "failed": failed,
            "failed_columns": sorted({str(f["column"]) for f in failed if f.get("column")}),
            "reason": reason,
        },
        result=result.to_json_dict(),
        html=render_page(result, title),
    )


def _context() -> Any:
    """A GX context in memory: no project folder, no docs site, no progress bars, no analytics."""
    quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        # GX's default ephemeral context makes a temporary docs folder per context and keeps it.
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def render_page(result: Any, title: str) -> str:
    """GX's data-docs page of one validation result, titled ``title``."""
    from great_expectations.render.renderer.page_renderer import ValidationResultsPageRenderer
    from great_expectations.render.view.view import DefaultJinjaPageView

    document = ValidationResultsPageRenderer().render(result)  # type: ignore[no-untyped-call,unused-ignore]
    page = str(DefaultJinjaPageView().render(document))  # type: ignore[no-untyped-call,unused-ignore]
    escaped = html_lib.escape(title)
    page = re.sub(r"<title>.*?</title>", f"<title>{escaped}</title>", page, count=1, flags=re.S)
    return self_contained(page)


# The data-docs template loads Bootstrap, jQuery and Vega from CDNs and GX's logo from S3.
# A stored report opens offline and without calls to third parties: those tags are dropped
# (the content is plain HTML and reads the same) and a small stylesheet takes their place.
_REMOTE = re.compile(
    r"<script[^>]*\ssrc=\"https?://[^\"]*\"[^>]*>\s*</script>"
    r"|<link[^>]*\shref=\"https?://[^\"]*\"[^>]*>"
    r"|<img[^>]*\ssrc=\"https?://[^\"]*\"[^>]*>",
    re.I,
)
_STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
.text-danger { color: #b00020; } .text-success { color: #1b7f3b; }
</style>"""


def self_contained(page: str) -> str:
    """``page`` without remote scripts, stylesheets and images, with a small inline style."""
    page = _REMOTE.sub("", page)
    return page.replace("</head>", _STYLE + "</head>", 1)


def _failure(result: Any) -> dict[str, Any]:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    details = result.result or {}
    failure: dict[str, Any] = {"expectation": config.type, "column": kwargs.get("column")}
    for key in ("unexpected_count", "unexpected_percent", "observed_value"):
        if key in details:
            failure[key] = details[key]
    if result.exception_info and result.exception_info.get("raised_exception"):
        failure["error"] = str(result.exception_info.get("exception_message"))
    failure["kwargs"] = kwargs
    return failure


def _describe(failure: Mapping[str, Any]) -> str:
    where = f" on column '{failure['column']}'" if failure.get("column") else ""
    if "unexpected_count" in failure:
        share = failure.get("unexpected_percent") or 0.0
        detail = f" ({failure['unexpected_count']} unexpected values, {share:.1f}%)"
    elif "observed_value" in failure:
        detail = f" (observed {failure['observed_value']!r})"
    elif "error" in failure:
        detail = f" (error: {failure['error']})"
    else:
        detail = ""
    return f"{failure['expectation']}{where}{detail}"


def _write_data_docs(step_name: str, report: ValidationReport) -> None:
    """Also write the page where the stack's ``data_validator`` says data docs go, if set."""
    from zenml_bridge_great_expectations.validator import data_docs_target

    target = data_docs_target(step_name)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".html.tmp")
        tmp.write_text(report.html, encoding="utf-8")
        tmp.replace(target)
