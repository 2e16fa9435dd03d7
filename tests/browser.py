"""Opening a generated HTML page in headless Chromium (importable as ``browser``: tests/ is on pytest's pythonpath).

The system's Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it) is driven by Playwright through
``executable_path``, so no browser is downloaded. Tests that need it skip when either is missing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    """The Chromium binary on PATH, if any."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    """The Chromium binary, or skip the test (no binary, or no playwright package)."""
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    return path


@dataclass
class PageCheck:
    """What the browser saw."""

    console_errors: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)  # src prefix, naturalWidth, complete
    values: dict[str, Any] = field(default_factory=dict)  # whatever the caller's script returned
    screenshot: Path | None = None


def open_page(html: Path, screenshot: Path, script: str = "() => null", *, width: int = 1200,
              full_page: bool = True) -> PageCheck:
    """Load ``html`` from disk, run ``script`` in the page, take a screenshot, and report errors and images.

    Network requests other than to the file itself and ``data:`` URIs are counted as console errors: the page must
    be self-contained.
    """
    from playwright.sync_api import sync_playwright

    check = PageCheck(screenshot=screenshot)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=require_browser(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: check.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: check.console_errors.append(f"page error: {e}"))
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
                    else check.console_errors.append(f"network request: {r.url}"))
            page.goto(html.resolve().as_uri(), wait_until="load")
            check.images = page.evaluate(
                "() => Array.from(document.images).map(i => ({src: i.src.slice(0, 40), "
                "naturalWidth: i.naturalWidth, complete: i.complete}))")
            check.values = page.evaluate(script)
            page.screenshot(path=str(screenshot), full_page=full_page)
        finally:
            browser.close()
    return check
