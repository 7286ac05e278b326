"""`runs compare`: N runs as tables, --json (stable schema), --html (escaped, charts), bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zenml_bridge.cli.main import main

PIPES = """
from typing import Annotated

from zenml_bridge import get_step_context, pipeline, step


@step
def load(rows: int = 3) -> list[int]:
    return list(range(rows))


@step
def score(data: list[int], label: str = "x") -> Annotated[dict, "summary"]:
    get_step_context().log_metric("mean", sum(data) / max(len(data), 1))
    get_step_context().log_metric("label_length", len(label))
    return {"n": len(data), "label": label}


@pipeline
def scored(rows: int = 3, label: str = "x") -> None:
    score(load(rows=rows), label=label)


@pipeline
def other(rows: int = 3) -> None:
    load(rows=rows)
"""
HOSTILE = '<script>alert("x")</script>&amp;'


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def runs(stores_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Three runs of `scored`: A rows=3, B rows=5 (load differs), C rows=3 + hostile label."""
    source = tmp_path / "zb_compare_pipes.py"
    source.write_text(PIPES, encoding="utf-8")
    ids = []
    for params in (["rows=3"], ["rows=5"], ["rows=3", f"label={HOSTILE}"]):
        code, out, err = cli(
            capsys, "run", f"{source}:scored", *[arg for p in params for arg in ("-p", p)]
        )
        assert code == 0, out + err
        ids.append(re.search(r"Run (\S+) completed", out).group(1))  # type: ignore[union-attr]
    return source, ids


def test_three_runs_as_tables(runs, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    _, (a, b, c) = runs
    code, out, err = cli(capsys, "runs", "compare", a, b, c)
    assert code == 0, err
    assert f"A = {a}" in out and f"C = {c}" in out
    assert re.search(r"rows\s+3\s+5\s+3\s+differs", out), out
    assert re.search(r"score\.mean\s+1\.0\s+2\.0\s+1\.0\s+differs", out), out
    # C re-used load from A's cache: its status is cached, the artifact is the same as A's.
    assert re.search(r"load\s+completed\s+completed\s+cached\s+\w+\s+\w+\s+\w+\s+.*status", out)
    assert re.search(r"load\.output\s+completed\s+completed\s+cached\s+(\w+)\s+\w+\s+\1", out)
    assert re.search(r'score\.summary\s+\{"label": "x", "n": 3\}\s+\{"label": "x", "n": 5\}', out)


def test_json_schema(runs, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    _, (a, b, c) = runs
    code, out, err = cli(capsys, "runs", "compare", a, b, c, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["schema"] == "zenml-bridge/runs-compare/1"
    assert set(report) == {
        "schema", "runs", "notes", "parameters", "metrics", "run_metadata", "steps", "artifacts"
    }  # fmt: skip
    assert [r["run_id"] for r in report["runs"]] == [a, b, c]
    assert report["notes"] == []
    params = {p["name"]: p for p in report["parameters"]}
    assert params["rows"] == {"name": "rows", "values": [3, 5, 3], "differs": True}
    metrics = {(m["step"], m["name"]): m for m in report["metrics"]}
    assert metrics["score", "mean"]["values"] == [1.0, 2.0, 1.0]
    steps = {s["step"]: s for s in report["steps"]}
    load = steps["load"]
    assert [cell["cached"] for cell in load["runs"]] == [False, False, True]
    assert "parameters" in load["changed"] and "code_hash" not in load["changed"]
    assert (
        steps["score"]["runs"][0]["inputs"]["data"] == steps["score"]["runs"][2]["inputs"]["data"]
    )
    assert (
        steps["score"]["runs"][0]["inputs"]["data"] != steps["score"]["runs"][1]["inputs"]["data"]
    )
    arts = {(r["step"], r["output"]): r for r in report["artifacts"]}
    summary = arts["score", "summary"]
    assert [cell["value"] for cell in summary["runs"]] == [
        {"n": 3, "label": "x"},
        {"n": 5, "label": "x"},
        {"n": 3, "label": HOSTILE},
    ]
    assert (
        arts["load", "output"]["runs"][0]["sha256"] == arts["load", "output"]["runs"][2]["sha256"]
    )
    code, out, _ = cli(capsys, "runs", "compare", a, b, "--json", "--no-values")
    assert all("value" not in cell for row in json.loads(out)["artifacts"] for cell in row["runs"])


def test_html_page_is_escaped_and_has_one_chart_per_numeric_metric(
    runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    _, (a, b, c) = runs
    page = tmp_path / "report.html"
    code, out, err = cli(capsys, "runs", "compare", a, b, c, "--html", str(page))
    assert code == 0, err
    assert f"Wrote {page}" in out
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;" in text
    assert text.count("<svg") == 2, "one chart per metric"
    assert 'aria-label="score.mean"' in text and 'aria-label="score.label_length"' in text
    assert not list(tmp_path.glob(".zb-compare-*")), "temporary file left behind"


def test_bad_input_exits_2(runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    source, (a, b, _) = runs
    code, _, err = cli(capsys, "runs", "compare", a)
    assert code == 2 and "needs at least two runs" in err and "Traceback" not in err
    code, _, err = cli(capsys, "runs", "compare", a, a[:-1] + "?")
    assert code == 2 and "There is no run" in err and f"Did you mean '{a}'?" in err
    code, _, err = cli(capsys, "runs", "compare", a, a)
    assert code == 2 and f"Run {a} is given twice" in err
    page = tmp_path / "missing" / "report.html"
    code, _, err = cli(capsys, "runs", "compare", a, b, "--html", str(page))
    assert code == 2 and "does not exist" in err and not page.exists()
    code, out, err = cli(capsys, "run", f"{source}:other")
    assert code == 0, err
    code, out, err = cli(capsys, "runs", "compare", a, "latest")
    assert code == 0, err
    assert "Note: The runs belong to different pipelines (other, scored)" in out
    assert re.search(r"score\s+completed\s+-\s+\w+\s+-\s+missing", out), out


RUN_METRICS = """
from zenml_bridge import log_run_metric, pipeline, step


@step
def fit(C: float = 1.0) -> float:
    log_run_metric("auc", 0.5 + C / 10)
    return C


@pipeline
def fitted(C: float = 1.0) -> None:
    fit(C=C)
"""


def test_run_level_metrics_are_compared(
    stores_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs once run-level metrics exist (`log_run_metric`, the `stack` branch); skipped before."""
    import zenml_bridge

    if not hasattr(zenml_bridge, "log_run_metric"):
        pytest.skip("this checkout has no log_run_metric yet")
    source = tmp_path / "zb_compare_run_metrics.py"
    source.write_text(RUN_METRICS, encoding="utf-8")
    ids = []
    for c in ("1.0", "2.0"):
        code, out, err = cli(capsys, "run", f"{source}:fitted", "-p", f"C={c}")
        assert code == 0, out + err
        ids.append(re.search(r"Run (\S+) completed", out).group(1))  # type: ignore[union-attr]
    code, out, err = cli(capsys, "runs", "compare", *ids, "--json")
    assert code == 0, err
    metrics = {(m["step"], m["name"]): m["values"] for m in json.loads(out)["metrics"]}
    assert metrics[None, "auc"] == [0.6, 0.7]
    code, out, err = cli(capsys, "runs", "compare", *ids)
    assert re.search(r"^\(run\)\.auc\s+0\.6\s+0\.7\s+differs", out, re.M), out
