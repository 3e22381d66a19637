"""Headless Debian chromium driven by Playwright, for page tests: never a downloaded browser."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

# Debian's package installs here; .ci/run installs it. Playwright's own browser download is never used.
CHROMIUM = os.environ.get("R1CDS_TEST_CHROMIUM", "/usr/bin/chromium")

# The sandbox's network is closed: without these, chromium retries Google's hosts on every start.
_QUIET_FLAGS = [
    "--no-sandbox",  # CI runs as root, where chromium refuses its sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]

# Screenshots land here so a person can look at what the test saw; .gitignore keeps them out of commits.
SCREENSHOT_DIR = Path(
    os.environ.get("R1CDS_TEST_SCREENSHOTS", Path(__file__).resolve().parents[2] / ".artifacts")
)


def chromium_available() -> bool:
    return Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """Launch chromium; Playwright gives it a fresh temporary profile and removes it at close."""
    if not chromium_available():
        raise RuntimeError(f"no chromium at {CHROMIUM}: apt-get install -y chromium chromium-driver")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=_QUIET_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG under SCREENSHOT_DIR and return its path (a non-empty file, checked)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    if path.stat().st_size < 1000:
        raise AssertionError(f"screenshot {path} is implausibly small")
    return path
