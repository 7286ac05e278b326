"""A real headless browser for tests: Debian's Chromium driven by Playwright.

Playwright's own browser download is not reachable from our machines, so the browser is
Debian's ``chromium`` package, installed by :func:`ensure_chromium` (apt-get, as root) when it
is missing, and Playwright launches it with ``executable_path``.

Tests under ``tests/`` import this module as ``browser`` (``tests/conftest.py`` puts ``tests/``
on ``sys.path``)::

    from browser import open_page, screenshot

    page = open_page("http://127.0.0.1:8000/", screenshot_to=tmp_path / "home.png")
    assert "Runs" in page.title

For several steps in one browser (clicks, navigation), use :func:`chromium_page`::

    with chromium_page() as page:
        page.goto(url)
        page.click("text=train")

A tox env that needs the browser lists ``playwright`` in ``deps`` and runs
``python tests/browser.py --install`` in ``commands_pre`` (see ``[testenv:dashboard]``).

From a shell: ``python tests/browser.py --install`` prints Chromium's path (installing it when
missing); ``python tests/browser.py --screenshot URL_OR_FILE OUT.png`` prints the page title.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# Another path (a Chromium or Chrome that is already there) overrides the Debian package.
CHROMIUM_ENV = "ZENML_BRIDGE_CHROMIUM"
# Several tox envs may start at once: one apt-get at a time, the others wait for its result.
_LOCK_FILE = "/tmp/zenml-bridge-chromium-install.lock"
_APT_TIMEOUT_S = 1200


class BrowserUnavailable(RuntimeError):
    """Chromium is missing and could not be installed; the message says what to do."""


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Wait for another apt/dpkg run (another tox env, unattended upgrades) instead of failing.
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=600", *args]
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=_APT_TIMEOUT_S, check=False
    )


def _install_chromium() -> None:
    if shutil.which("apt-get") is None:
        raise BrowserUnavailable(
            f"Chromium is not at {CHROMIUM} and this machine has no apt-get to install it. "
            f"Install Chromium and set {CHROMIUM_ENV}=/path/to/chromium."
        )
    if os.geteuid() != 0:
        raise BrowserUnavailable(
            f"Chromium is not at {CHROMIUM} and installing it needs root. Run "
            "`sudo apt-get install -y --no-install-recommends chromium` once, or set "
            f"{CHROMIUM_ENV}=/path/to/chromium."
        )
    install = ("install", "-y", "--no-install-recommends", "chromium")
    result = _apt_get(*install)
    if result.returncode != 0:
        # A fresh machine has no package lists yet ("Unable to locate package chromium").
        update = _apt_get("update")
        if update.returncode != 0:
            raise BrowserUnavailable(
                "Chromium is missing and `apt-get update` failed:\n"
                + (update.stderr or update.stdout)[-2000:]
            )
        result = _apt_get(*install)
    if result.returncode != 0 or not Path(CHROMIUM).exists():
        raise BrowserUnavailable(
            "Chromium is missing and `apt-get install -y --no-install-recommends chromium` "
            "failed:\n" + (result.stderr or result.stdout)[-2000:]
        )


def ensure_chromium() -> str:
    """Return the path of a Chromium binary, installing Debian's ``chromium`` when missing.

    ``$ZENML_BRIDGE_CHROMIUM`` names another binary. Raises :class:`BrowserUnavailable` with the
    command to run when Chromium is missing and cannot be installed (no root, no apt-get, apt
    failed).
    """
    override = os.environ.get(CHROMIUM_ENV)
    if override:
        if not os.access(override, os.X_OK):
            raise BrowserUnavailable(
                f"{CHROMIUM_ENV}={override} is not an executable file. Point it at a Chromium "
                f"binary or unset it to use {CHROMIUM}."
            )
        return override
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    import fcntl

    with open(_LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not os.access(CHROMIUM, os.X_OK):  # another process may have installed it
                _install_chromium()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return CHROMIUM


def _as_url(url_or_file: str | os.PathLike[str]) -> str:
    text = os.fspath(url_or_file)
    if "://" in text or text.startswith(("about:", "data:")):
        return text
    return Path(text).resolve().as_uri()


@contextlib.contextmanager
def chromium_browser() -> Iterator[Any]:
    """A headless Playwright ``Browser`` on the system Chromium, closed on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - depends on the env
        raise BrowserUnavailable(
            "playwright is not installed in this environment. Add `playwright` to the tox env's "
            "deps (see [testenv:dashboard] in tox.ini)."
        ) from exc
    executable = ensure_chromium()
    with sync_playwright() as pw:
        # Root in a container: Chromium's sandbox needs user namespaces we may not have.
        browser = pw.chromium.launch(
            executable_path=executable,
            headless=True,
            chromium_sandbox=False,
            args=["--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A fresh Playwright ``Page`` in headless Chromium (its own browser), closed on exit."""
    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": width, "height": height})
        try:
            yield context.new_page()
        finally:
            context.close()


@dataclass(frozen=True)
class PageResult:
    """What a page showed: its final URL, ``<title>`` and visible text (``body.innerText``)."""

    url: str
    title: str
    text: str


def open_page(
    url_or_file: str | os.PathLike[str],
    *,
    screenshot_to: str | os.PathLike[str] | None = None,
    wait_for: str | None = None,
    full_page: bool = True,
    timeout_ms: int = 30_000,
) -> PageResult:
    """Load a URL or a local file in headless Chromium; optionally write a PNG screenshot.

    ``wait_for`` is a selector to wait for before reading the page (for pages that draw with
    JavaScript, e.g. ``"svg"``).
    """
    with chromium_page() as page:
        page.set_default_timeout(timeout_ms)
        page.goto(_as_url(url_or_file), wait_until="load")
        if wait_for:
            page.wait_for_selector(wait_for)
        if screenshot_to is not None:
            out = Path(screenshot_to)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=full_page)
        return PageResult(url=page.url, title=page.title(), text=page.inner_text("body"))


def page_text(url_or_file: str | os.PathLike[str], *, wait_for: str | None = None) -> str:
    """The visible text of a URL or local file as headless Chromium renders it."""
    return open_page(url_or_file, wait_for=wait_for).text


def screenshot(
    url_or_file: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    *,
    wait_for: str | None = None,
) -> PageResult:
    """Write a full-page PNG of a URL or local file; returns what the page showed."""
    return open_page(url_or_file, screenshot_to=out_png, wait_for=wait_for)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="install Chromium when missing")
    parser.add_argument("--screenshot", nargs=2, metavar=("URL_OR_FILE", "OUT_PNG"))
    args = parser.parse_args(argv)
    try:
        if args.install or not args.screenshot:
            print(ensure_chromium())
        if args.screenshot:
            print(screenshot(args.screenshot[0], args.screenshot[1]).title)
    except BrowserUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
