"""A browser front end on another origin may call /api: CORS as ``BLOGHUB_CORS_ORIGINS``
configures it, for RealWorld's methods and its ``Authorization: Token`` header."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bloghub.settings import Settings
from tests.conftest import LiveServer, serve

FRONT_END = "https://conduit.example"


def test_the_origins_come_from_bloghub_cors_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOGHUB_CORS_ORIGINS", f'["{FRONT_END}"]')
    assert Settings().cors_origins == [FRONT_END]


@pytest.fixture
async def browser(settings: Settings, live_api: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve(settings.model_copy(update={"cors_origins": [FRONT_END]})) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        yield client


async def ask(browser: httpx.AsyncClient, path: str, method: str, headers: str) -> httpx.Response:
    """The preflight a browser sends from the front end before ``method`` with ``headers``."""
    return await browser.options(
        path,
        headers={
            "origin": FRONT_END,
            "access-control-request-method": method,
            "access-control-request-headers": headers,
        },
    )


@pytest.mark.parametrize(("method", "path"), [("PUT", "/api/user"), ("DELETE", "/api/articles/x")])
async def test_a_preflight_from_the_front_end_is_allowed(
    browser: httpx.AsyncClient, method: str, path: str
) -> None:
    preflight = await ask(browser, path, method, "authorization, content-type")
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == FRONT_END
    assert method in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()


async def test_answers_go_to_the_front_end_only(browser: httpx.AsyncClient) -> None:
    tags = await browser.get("/api/tags", headers={"origin": FRONT_END})
    assert tags.status_code == 200
    assert tags.headers["access-control-allow-origin"] == FRONT_END
    foreign = await browser.get("/api/tags", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers


async def test_a_front_end_sending_x_requested_with_is_allowed(browser: httpx.AsyncClient) -> None:
    # jQuery-style clients, and RealWorld's own API test collection, send it on every call.
    preflight = await ask(
        browser, "/api/articles", "POST", "authorization,content-type,x-requested-with"
    )
    assert preflight.status_code == 200, preflight.text
    assert "x-requested-with" in preflight.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/api/articles", {"errors": {"cors": ["Disallowed CORS headers"]}}), ("/v1/articles", None)],
)
async def test_a_refused_preflight_speaks_the_apis_error_shape(
    browser: httpx.AsyncClient, path: str, shape: dict[str, object] | None
) -> None:
    refused = await ask(browser, path, "POST", "x-not-allowed")
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/json"
    if shape is not None:
        assert refused.json() == shape
    else:
        assert refused.json()["error"]["code"] == "cors_refused"
    assert refused.headers["access-control-allow-origin"] == FRONT_END
