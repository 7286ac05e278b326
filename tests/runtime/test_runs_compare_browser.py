"""`runs compare --html` opened in headless Chromium (``tox -e dashboard -- tests/runtime/
test_runs_compare_browser.py``): the page renders its tables and charts, and user text shows as
text, never as markup.

Needs playwright (the ``dashboard`` env has it); elsewhere the module is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is in the `dashboard` tox env")

from browser import chromium_page  # noqa: E402
from test_runs_compare import HOSTILE, cli, runs  # noqa: E402, F401

#: Set to a folder to keep the screenshot (docs/images/ in the docs is made this way).
SHOTS = os.environ.get("ZENML_BRIDGE_SCREENSHOTS")


def test_compare_page_in_chromium(runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    _, (a, b, c) = runs
    page_file = tmp_path / "report.html"
    code, _, err = cli(capsys, "runs", "compare", a, b, c, "--html", str(page_file))
    assert code == 0, err
    with chromium_page(width=1100, height=800) as page:
        messages: list[str] = []
        page.on("console", lambda msg: messages.append(msg.text))
        page.on("dialog", lambda dialog: messages.append(f"dialog {dialog.message}"))
        page.goto(page_file.resolve().as_uri(), wait_until="load")
        text = page.inner_text("body")
        assert a in text and b in text and c in text
        assert HOSTILE in text, "the label must show as text"
        assert page.locator("script").count() == 0 and not messages
        charts = page.locator("figure.chart svg")
        assert charts.count() == 2
        box = charts.first.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100
        assert page.locator("figure.chart rect").count() == 6  # 2 metrics x 3 runs
        assert page.locator("tr.differs").count() >= 4
        out = Path(SHOTS or tmp_path) / "runs-compare.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        assert out.stat().st_size > 10_000
