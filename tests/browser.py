"""Debian's Chromium driven by Playwright (no browser download), for the tests that look at
the pages as a person would, with every Content-Security-Policy violation recorded."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "e2e"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Set before any script of the page runs (Playwright injects it past the page's policy).
_RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.effectiveDirective + ' ' + (e.blockedURI || 'inline'));
});
"""


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def watched_page(browser: Browser, *, user_agent: str | None = None) -> Page:
    """A page that records what its Content-Security-Policy refused."""
    context = await browser.new_context(
        viewport={"width": 1400, "height": 1300}, user_agent=user_agent
    )
    await context.add_init_script(_RECORD_VIOLATIONS)
    return await context.new_page()


async def csp_violations(page: Page) -> list[str]:
    found: list[str] = await page.evaluate("window.__cspViolations")
    return found


def directives(policy: str) -> dict[str, list[str]]:
    parts = (p.split() for p in policy.split(";") if p.strip())
    return {p[0]: p[1:] for p in parts}


def assert_strict(policy: str) -> None:
    """Scripts from this origin only (no inline script, no eval), and no source anywhere in
    the policy that names another origin or a wildcard."""
    found = directives(policy)
    scripts = found.get("script-src", found["default-src"])
    assert scripts == ["'self'"], policy
    assert found["default-src"] == ["'self'"], policy
    assert found.get("object-src") == ["'none'"], policy
    for sources in found.values():
        for source in sources:
            assert source in ("'self'", "'none'", "data:"), policy
