"""A request is judged as of when it has all come. A client that sends a write's head and
holds its body back cannot carry a session past a logout answered meanwhile: the session
was checked when the head came, and is checked again once the body is in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest

from tests.conftest import LiveServer
from tests.e2e.conduit_client import register
from tests.e2e.test_sessions import account, bearer, login

pytestmark = pytest.mark.usefixtures("live_api")

AGENT = "bloghub-tests/1"  # the client fixture's: tokens are bound to it


@contextlib.asynccontextmanager
async def held(
    live: LiveServer, method: str, path: str, authorization: str, body: bytes
) -> AsyncIterator[Callable[[], asyncio.Future[tuple[int, bytes]]]]:
    """A request whose head and first bytes of body are sent; what it gives sends the rest
    and is the answer's status and body."""
    url = httpx.URL(live.url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        f"{method} {path} HTTP/1.1\r\nhost: x\r\nuser-agent: {AGENT}\r\n"
        f"authorization: {authorization}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body[:3]
    )
    await writer.drain()

    async def rest() -> tuple[int, bytes]:
        writer.write(body[3:])
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=15)
        head, _, answer = raw.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), answer

    try:
        yield lambda: asyncio.ensure_future(rest())
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_draft_whose_body_was_held_across_a_logout_is_refused(
    client: httpx.AsyncClient, live_api: LiveServer, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    token = (await login(client, email))["access_token"]
    body = orjson.dumps({"title": "after logout", "content": "x", "tags": []})
    async with held(live_api, "POST", "/v1/articles", f"Bearer {token}", body) as rest:
        await asyncio.sleep(0.2)  # the head is in, and its session checked
        out = await client.post("/v1/auth/logout", headers=bearer(token))
        assert out.status_code == 204, out.text
        status, answer = await rest()
    assert status == 401, answer
    assert orjson.loads(answer)["error"]["message"] == "the session has ended; log in again"
    mine = await client.get(
        "/v1/me/articles", headers=bearer((await login(client, email))["access_token"])
    )
    assert mine.json()["articles"] == [], "nothing recorded"


async def test_a_body_held_across_a_logout_is_refused_on_a_write_that_takes_none(
    client: httpx.AsyncClient, live_api: LiveServer, unique_email: Callable[[], str]
) -> None:
    """A like takes no body, but one sent is read (an empty object is let through): its
    session, read with its head, is read again once the body is in."""
    author = bearer((await login(client, await account(client, unique_email)))["access_token"])
    made = await client.post(
        "/v1/articles", json={"title": "Liked", "content": "x", "tags": []}, headers=author
    )
    article_id = made.json()["article"]["id"]
    assert (await client.post(f"/v1/articles/{article_id}/publish", headers=author)).is_success
    token = (await login(client, await account(client, unique_email)))["access_token"]
    like = f"/v1/articles/{article_id}/like"
    async with held(live_api, "PUT", like, f"Bearer {token}", b"{   }") as rest:
        await asyncio.sleep(0.2)
        assert (await client.post("/v1/auth/logout", headers=bearer(token))).status_code == 204
        status, answer = await rest()
    assert status == 401, answer


async def test_a_realworld_article_whose_body_was_held_across_a_logout_is_refused(
    client: httpx.AsyncClient, live_api: LiveServer
) -> None:
    jake = await register(client)
    body = orjson.dumps(
        {"article": {"title": "After logout", "description": "d", "body": "b", "tagList": []}}
    )
    async with held(live_api, "POST", "/api/articles", f"Token {jake.token}", body) as rest:
        await asyncio.sleep(0.2)
        out = await client.post("/v1/auth/logout", headers=bearer(jake.token))
        assert out.status_code == 204, out.text
        status, answer = await rest()
    assert status == 401, answer
    listed = await client.get("/api/articles", params={"author": jake.username})
    assert listed.json()["articlesCount"] == 0, "nothing recorded"


async def test_a_body_held_with_the_session_live_throughout_is_taken(
    client: httpx.AsyncClient, live_api: LiveServer, unique_email: Callable[[], str]
) -> None:
    token = (await login(client, await account(client, unique_email)))["access_token"]
    body = orjson.dumps({"title": "slow but fine", "content": "x", "tags": []})
    async with held(live_api, "POST", "/v1/articles", f"Bearer {token}", body) as rest:
        await asyncio.sleep(0.2)
        status, answer = await rest()
    assert status == 201, answer
