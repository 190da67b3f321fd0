"""Browser fixtures: the system's Chromium driven by Playwright, real servers, real clients.

Chromium is Debian's `chromium` package (found on PATH or at /usr/bin/chromium), launched with
`executable_path`: Playwright's own browser downloads are never used. Every test here is marked
`browser` and is skipped, with the reason, only when Chromium or the `playwright` package cannot
be found (`.ci/run` installs both). Servers and clients come from the e2e fixtures.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import (  # noqa: F401 - fixtures shared with the e2e tests
    _clean_environment,
    connect,
    make_server,
    module_server,
    pytest_runtest_makereport,
    unique,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def chromium_path() -> str | None:
    """The system Chromium: $CHROMIUM, else `chromium`/`chromium-browser` on PATH."""
    candidates = [os.environ.get("CHROMIUM"), shutil.which("chromium"),
                  shutil.which("chromium-browser"), "/usr/bin/chromium"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _missing() -> str | None:
    reasons = []
    if chromium_path() is None:
        reasons.append("no Chromium found (apt-get install -y chromium, or set $CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reasons.append("the playwright package is not installed (pip install -e '.[test]')")
    return "; ".join(reasons) or None


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    reason = _missing()
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"browser tests: {reason}"))


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module, closed at the module's end: Playwright's sync API keeps
    an asyncio loop of its own while it runs, which must not outlive these tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(),
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.errors = errors  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
