"""A token of an ended session counts against its address only, never against its user:
whoever kept it cannot use up the owner's per-user window and have the owner refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from bloghub.settings import Settings
from tests.conftest import LiveServer
from tests.e2e.test_rate_limit_and_cors import limited_client
from tests.e2e.test_sessions import account, bearer, login, password_change

PER_USER = 3


@pytest.fixture
async def strict(settings: Settings, live_api: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A server whose per-user limit is low and whose per-IP limit is not the one hit."""
    async with limited_client(
        settings, rate_ip_per_minute=60, rate_user_per_minute=PER_USER
    ) as client:
        yield client


async def statuses(client: httpx.AsyncClient, token: str, times: int) -> list[int]:
    return [
        (await client.get("/v1/users/me", headers=bearer(token))).status_code for _ in range(times)
    ]


async def test_a_logged_out_token_does_not_use_up_its_owners_limit(
    strict: httpx.AsyncClient, client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    ended, kept = await login(client, email), await login(client, email)
    out = await client.post("/v1/auth/logout", headers=bearer(ended["access_token"]))
    assert out.status_code == 204, out.text
    dead = await statuses(strict, ended["access_token"], 3 * PER_USER)
    owner = await statuses(strict, kept["access_token"], PER_USER + 1)
    # The logout itself was one of the owner's requests; the dead token's were not.
    assert owner == [200, 200, 429, 429], "the owner's own session was refused"
    assert dead == [401] * (3 * PER_USER)


async def test_a_token_ended_by_a_password_change_does_not_either(
    strict: httpx.AsyncClient, client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    old, changing = await login(client, email), await login(client, email)
    changed = await password_change(client, changing["access_token"])
    assert changed.status_code == 204, changed.text
    dead = await statuses(strict, old["access_token"], 3 * PER_USER)
    assert await statuses(strict, changing["access_token"], 1) == [200]
    assert dead == [401] * (3 * PER_USER)


async def test_a_live_token_over_its_limit_is_still_refused(
    strict: httpx.AsyncClient, client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    tokens = await login(client, await account(client, unique_email))
    answers = await statuses(strict, tokens["access_token"], PER_USER + 1)
    assert answers == [200] * PER_USER + [429]


async def test_a_token_copied_into_another_client_does_not_use_up_its_owners_limit(
    strict: httpx.AsyncClient, client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    tokens = await login(client, await account(client, unique_email))
    elsewhere = {**bearer(tokens["access_token"]), "user-agent": "curl/8.5.0"}
    copied = [
        (await strict.get("/v1/users/me", headers=elsewhere)).status_code
        for _ in range(3 * PER_USER)
    ]
    assert copied == [401] * (3 * PER_USER)
    assert await statuses(strict, tokens["access_token"], PER_USER) == [200] * PER_USER


async def test_a_second_user_agent_header_does_not_hide_the_owner_from_the_limit(
    strict: httpx.AsyncClient, client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """The token is checked against the first User-Agent sent; so is the count."""
    tokens = await login(client, await account(client, unique_email))
    agent = client.headers["user-agent"]
    twice = [
        ("user-agent", agent),
        ("user-agent", "curl/8.5.0"),
        ("authorization", f"Bearer {tokens['access_token']}"),
    ]
    answers = [
        (await strict.get("/v1/users/me", headers=twice)).status_code for _ in range(PER_USER + 1)
    ]
    assert answers == [200] * PER_USER + [429]
