"""Fixtures for the dashboard tier: a real mcd and a real headless Chromium.

Chromium is Debian's (/usr/bin/chromium) driven by Playwright; nothing is
downloaded (never ``playwright install``). Each browser gets a fresh
--user-data-dir that is deleted afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mcdaemon import Daemon  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]



@pytest.fixture(scope="module")
def daemon():
    tmp = tempfile.mkdtemp(prefix="mcweb-")
    os.chmod(tmp, 0o755)
    d = Daemon(tmp, web=True)
    try:
        d.start()
        yield d
        leftovers = d.cleanup()
        assert not leftovers, f"left behind: {json.dumps(leftovers)}\n{d.log()}"
    finally:
        if d.proc is not None:
            d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser_context():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (Makefile APT_DEV)")
    from playwright.sync_api import sync_playwright
    profile = tempfile.mkdtemp(prefix="mcweb-chromium-")
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900}, device_scale_factor=1,
            color_scheme="light")
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


class PageWatch:
    """A page plus what it must never do: raise, log a CSP violation, or open a dialog."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)
        # Chrome's console line for a failed load does not say which URL: keep them here.
        self.failed: list[str] = []
        page.on("response", lambda r: r.status >= 400 and self.failed.append(
            f"{r.request.method} {r.url} -> {r.status}"))

    def _console(self, msg):
        if msg.type == "error":
            text = msg.text
            # A request the test made to be refused logs its status; that is not a page bug.
            if "the server responded with a status of 403" in text:
                return
            self.errors.append(f"console: {text}")

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def check(self):
        assert not self.dialogs, f"the page opened dialogs (script ran): {self.dialogs}"
        assert not self.errors, f"the page logged errors: {self.errors} (failed requests: {self.failed})"


@pytest.fixture
def open_page(browser_context):
    pages: list[PageWatch] = []

    def _open(url: str) -> PageWatch:
        w = PageWatch(browser_context.new_page())
        pages.append(w)
        w.page.goto(url)
        return w

    yield _open
    for w in pages:
        try:
            w.check()
        finally:
            w.page.close()
