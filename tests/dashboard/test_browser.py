"""The shared browser helper itself: Chromium is there and Playwright drives it."""

from __future__ import annotations

import os

from browser import ensure_chromium, open_page, page_text


def test_ensure_chromium_returns_an_executable() -> None:
    path = ensure_chromium()
    assert os.access(path, os.X_OK), path


def test_open_local_file_reads_title_text_and_writes_screenshot(tmp_path) -> None:
    html = tmp_path / "page.html"
    html.write_text(
        "<!doctype html><title>Hello &amp; bye</title><p id=x>first</p>"
        "<script>document.getElementById('x').textContent = 'drawn by script'</script>",
        encoding="utf-8",
    )
    out = tmp_path / "shots" / "page.png"
    page = open_page(html, screenshot_to=out)
    assert page.title == "Hello & bye"
    assert "drawn by script" in page.text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "drawn by script" in page_text(html.as_uri())
