"""A person at /docs: Swagger UI served by bloghub under a strict policy, authorized with a
real access token, runs a read that waits for the caller's sign-up and shows its answer."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from playwright.async_api import Page

from tests.browser import ARTIFACTS, assert_strict, chromium, csp_violations, watched_page
from tests.conftest import LiveServer

PASSWORD = "docs-Page-pass-1!"
USER_AGENT = "bloghub-docs-browser/1"  # tokens are bound to the User-Agent that logged in


async def signed_up(live: LiveServer, email: str) -> tuple[str, str]:
    """A new account's access token, and the position of its sign-up."""
    async with httpx.AsyncClient(
        base_url=live.url, headers={"user-agent": USER_AGENT}, timeout=10
    ) as client:
        body = {"email": email, "password": PASSWORD, "confirm_password": PASSWORD}
        created = await client.post("/v1/users", json=body)
        assert created.status_code == 201, created.text
        login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        return login.json()["access_token"], created.headers["bloghub-position"]


async def test_docs_page_authorizes_and_runs_a_request(
    live_api: LiveServer, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    token, position = await signed_up(live_api, email)
    async with chromium() as browser:
        page = await watched_page(browser, user_agent=USER_AGENT)
        answer = await page.goto(f"{live_api.url}/docs")
        assert answer is not None
        assert answer.status == 200
        assert_strict(answer.headers["content-security-policy"])
        await page.wait_for_selector("#operations-accounts-get_v1_users_me")
        # Locked operations show Swagger UI's lock mark (an SVG, not a missing glyph).
        me = page.locator("#operations-accounts-get_v1_users_me")
        assert await me.locator("button.authorization__btn svg").count() == 1

        await page.click(".auth-wrapper button.authorize")
        await page.fill(".modal-ux input[type=text]", token)
        await page.click(".modal-ux .auth-btn-wrapper button.authorize")
        await page.click(".modal-ux button.btn-done")
        await page.fill("#after", position)

        await me.locator(".opblock-summary").click()
        await me.locator("button.try-out__btn").click()
        await me.locator("button.execute").click()
        status = me.locator(".live-responses-table .response .response-col_status")
        await status.wait_for()
        body = me.locator(".live-responses-table .response-col_description pre")
        curl = await me.locator(".curl-command").inner_text()
        await page.screenshot(path=str(ARTIFACTS / "docs-try-it-out.png"), full_page=True)
        await me.screenshot(path=str(ARTIFACTS / "docs-try-it-out-operation.png"))
        assert (await status.inner_text()).strip() == "200"
        assert email in await body.first.inner_text()
        assert f"Bearer {token}" in curl
        assert f"Bloghub-After: {position}" in curl
        assert await csp_violations(page) == []


async def try_it_out(
    page: Page, operation: str, body: str | None = None, **query: str
) -> tuple[str, str]:
    """Open ``operation``, run it from the page with ``body`` and ``query`` parameters, and
    read the status and body it shows."""
    op = page.locator(f"#{operation}")
    await op.locator(".opblock-summary").click()
    await op.locator("button.try-out__btn").click()
    if body is not None:
        await op.locator(".body-param textarea").fill(body)
    for name, value in query.items():
        await op.locator(f'tr[data-param-name="{name}"] input').fill(value)
    await op.locator("button.execute").click()
    status = op.locator(".live-responses-table .response .response-col_status")
    await status.wait_for()
    shown = op.locator(".live-responses-table .response-col_description pre").first
    return (await status.inner_text()).strip(), await shown.inner_text()


async def test_a_login_run_from_the_docs_page_authorizes_it(
    live_api: LiveServer, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    await signed_up(live_api, email)
    async with chromium() as browser:
        page = await watched_page(browser, user_agent=USER_AGENT)
        await page.goto(f"{live_api.url}/docs")
        body = json.dumps({"email": email, "password": PASSWORD})
        login = await try_it_out(page, "operations-accounts-post_v1_auth_login", body)
        me = await try_it_out(page, "operations-accounts-get_v1_users_me")
        assert login[0] == "200"
        assert me[0] == "200"
        assert email in me[1]
        assert await page.locator(".auth-wrapper button.authorize.locked").count() == 1
        assert await csp_violations(page) == []


async def test_a_search_run_from_the_docs_page_takes_its_words(live_api: LiveServer) -> None:
    # The page checked the words against the query's published pattern with a RegExp that
    # cannot read its ranges past U+FFFF, and refused every value before sending it.
    async with chromium() as browser:
        page = await watched_page(browser, user_agent=USER_AGENT)
        failures: list[str] = []
        page.on("pageerror", lambda error: failures.append(str(error)))
        await page.goto(f"{live_api.url}/docs")
        status, shown = await try_it_out(
            page, "operations-search-get_v1_search_articles", q="数据迁移 migration"
        )
        assert status == "200", shown
        assert '"articles"' in shown
        assert failures == []
        assert await csp_violations(page) == []
