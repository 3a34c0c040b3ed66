"""Shared browser fixtures: Debian's Chromium driven by Playwright's async API.

    async def test_something(page, screenshot, log_in, world):
        await log_in(page, world.dispatcher)      # through the real /login form
        await page.goto("/cases")                 # relative to the live server
        await screenshot(page, "case-list")       # PNG outside the repo, path printed

``page`` is a desktop-sized tab and ``mobile_page`` a phone-sized one, each in
its own browser context (own cookies) with its base URL set to ``live_server``.
Without Playwright or ``/usr/bin/chromium`` the browser tests skip with the
reason; under ``CI=true`` they fail instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import IN_CI

CHROMIUM = os.environ.get("HOTLINE_CHROMIUM", "/usr/bin/chromium")
# Without the networking flags Chromium keeps calling hosts this closed network refuses.
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000

_saved: list[Path] = []


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium fonts-noto-cjk)"
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Lets the page fixtures see whether the test failed, to keep a picture of the moment.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter):
    if _saved:
        terminalreporter.write_sep("-", f"{len(_saved)} browser screenshots")
        terminalreporter.write_line(f"saved in {_saved[0].parent}")


@pytest.fixture(scope="session")
async def browser():
    reason = browser_missing()
    if reason:
        if IN_CI:
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    where = os.environ.get("HOTLINE_SCREENSHOT_DIR")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _file_name(request, name: str) -> str:
    test = re.sub(r"^test_", "", request.node.name)
    return re.sub(r"[^\w.-]+", "_", f"{test}--{name}")[:150] + ".png"


@pytest.fixture
def screenshot(request, screenshot_dir):
    """``await screenshot(page, "name")``: a full-page PNG; returns and prints its path."""

    async def take(page, name: str) -> Path:
        path = screenshot_dir / _file_name(request, name)
        await page.screenshot(path=str(path), full_page=True)
        _saved.append(path)
        print(f"screenshot: {path}")
        return path

    return take


async def _new_page(browser, live_server, viewport):
    context = await browser.new_context(
        base_url=live_server, viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return context, page


async def _close(context, page, request, screenshot_dir):
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and not page.is_closed():
        path = screenshot_dir / _file_name(request, "FAILED")
        try:
            await page.screenshot(path=str(path), full_page=True)
            _saved.append(path)
            print(f"screenshot of the failure: {path}")
        except Exception as exc:  # the page may be gone with the failure
            print(f"no screenshot of the failure: {exc}")
    await context.close()


@pytest.fixture
async def page(browser, live_server, request, screenshot_dir):
    """A desktop-sized tab on the live server; JavaScript errors collect in ``page.js_errors``."""
    context, tab = await _new_page(browser, live_server, DESKTOP)
    yield tab
    await _close(context, tab, request, screenshot_dir)


@pytest.fixture
async def mobile_page(browser, live_server, request, screenshot_dir):
    """A phone-sized tab (390×844) on the live server, as most citizens see the site."""
    context, tab = await _new_page(browser, live_server, PHONE)
    yield tab
    await _close(context, tab, request, screenshot_dir)


async def log_in_through_form(page, person) -> None:
    """Sign a staff member in through the real /login page (session cookie and CSRF)."""
    await page.goto("/login")
    await page.get_by_label("用户名").fill(person.username)
    await page.get_by_label("密码").fill(person.password)
    async with page.expect_navigation():
        await page.get_by_role("button", name="登录").click()
    if page.url.rstrip("/").endswith("/login"):
        message = await page.locator(".error").all_inner_texts()
        raise AssertionError(f"login as {person.username} failed: {message}")


@pytest.fixture
def log_in():
    """``await log_in(page, world.dispatcher)``: log a staff user in through /login."""
    return log_in_through_form
