"""Failed logins: an attacker's wrong passwords lock the attacker's address, never the
owner out; guesses spread over many addresses slow down, except from addresses the owner
has logged in from; and each failure and lock is in the security log. Client addresses
come from X-Forwarded-For, which the test settings trust from loopback (a proxy's place)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from structlog.testing import capture_logs

from bloghub.settings import Settings
from tests.conftest import LiveServer, serve
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.e2e.test_sessions import account

WRONG = "Wrong-pass-1"


def at(ip: str) -> dict[str, str]:
    """Headers of a request that a trusted proxy forwarded from ``ip``."""
    return {"x-forwarded-for": ip}


async def log_in(client: httpx.AsyncClient, email: str, password: str, ip: str) -> httpx.Response:
    return await client.post(
        "/v1/auth/login", json={"email": email, "password": password}, headers=at(ip)
    )


@asynccontextmanager
async def site(settings: Settings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve(settings.model_copy(update=overrides)) as live,
        httpx.AsyncClient(
            base_url=live.url, headers={"user-agent": "bloghub-tests/1"}, timeout=10
        ) as client,
    ):
        yield client


async def test_wrong_passwords_from_one_address_do_not_lock_the_owner_out(
    client: httpx.AsyncClient, unique_email: Callable[[], str], live_api: LiveServer
) -> None:
    email = await account(client, unique_email)
    attacker, owner = "198.51.100.7", "203.0.113.9"
    statuses = [(await log_in(client, email, WRONG, attacker)).status_code for _ in range(7)]
    assert statuses == [401] * 5 + [429] * 2

    guessed = await log_in(client, email, PASSWORD, attacker)
    assert guessed.status_code == 429, "the attacker's lock holds even for the right password"
    assert "x-jwt-token" not in guessed.headers

    at_once = await log_in(client, email, PASSWORD, owner)
    assert at_once.status_code == 200, at_once.text
    assert at_once.json()["access_token"]
    # What the lockout keeps names the email only by a hash: it was a key in clear,
    # there after the account's erasure had freed the address.
    assert [k async for k in live_api.container.redis.scan_iter(match=f"*{email}*")] == []


async def test_a_realworld_login_locked_out_says_how_long_to_wait(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """RealWorld's 429 carries the lock's own wait, as /v1's does: a client trusting
    ``Retry-After`` does not hammer a lock every second for fifteen minutes."""
    email = await account(client, unique_email)
    sent = {"user": {"email": email, "password": WRONG}}
    answers = [
        await client.post("/api/users/login", json=sent, headers=at("198.51.100.8"))
        for _ in range(6)
    ]
    assert [a.status_code for a in answers] == [401] * 5 + [429]
    assert int(answers[-1].headers["retry-after"]) > 60
    # The request as a whole is refused, as the rate limiter's 429 says (it was "body").
    assert list(answers[-1].json()["errors"]) == ["request"]


async def test_guesses_from_many_addresses_wait_but_the_owners_known_address_does_not(
    settings: Settings, live_api: LiveServer, unique_email: Callable[[], str]
) -> None:
    async with site(settings, login_failures_per_account=3, login_delay_first_s=60) as client:
        email = await account(client, unique_email)
        home = "203.0.113.20"
        assert (await log_in(client, email, PASSWORD, home)).status_code == 200

        for n in range(3):
            wrong = await log_in(client, email, WRONG, f"198.51.100.{10 + n}")
            assert wrong.status_code == 401
        stranger = await log_in(client, email, PASSWORD, "192.0.2.55")
        assert stranger.status_code == 429, "a new address waits once guesses pile up"
        assert 0 < int(stranger.headers["retry-after"]) <= 60
        next_guess = await log_in(client, email, WRONG, "198.51.100.99")
        assert next_guess.status_code == 429

        owner = await log_in(client, email, PASSWORD, home)
        assert owner.status_code == 200, "an address the owner logged in from never waits"


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(
    settings: Settings, live_api: LiveServer, unique_email: Callable[[], str]
) -> None:
    async with site(settings, trusted_proxies=[]) as client:
        email = await account(client, unique_email)
        for n in range(5):
            # Each request claims a new address; the lock still finds the real peer.
            assert (await log_in(client, email, WRONG, f"198.51.100.{30 + n}")).status_code == 401
        claimed = await log_in(client, email, PASSWORD, "203.0.113.30")
        assert claimed.status_code == 429


async def test_failed_logins_and_locks_are_in_the_security_log_without_the_password(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    created = await client.post("/v1/users", json=signup_body(email))
    user_id = created.json()["user"]["id"]
    ip = "198.51.100.77"
    with capture_logs() as lines:
        for _ in range(5):
            assert (await log_in(client, email, WRONG, ip)).status_code == 401
        assert (await log_in(client, email, PASSWORD, ip)).status_code == 429
    security = [line for line in lines if line.get("security") and line["ip"] == ip]
    assert [line["event"] for line in security] == [
        *["login.failed"] * 5,
        "login.locked",
        "login.refused",
    ]
    assert all(line["user_id"] == user_id for line in security)
    assert security[5]["scope"] == "account_ip"
    assert not [line for line in lines if WRONG in repr(line) or PASSWORD in repr(line)]


async def test_guesses_sent_at_once_are_counted_before_they_are_checked(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """A burst does not get past the limit by having every guess checked before the first
    is counted: five are checked, the rest refused, the right password among them too."""
    email = await account(client, unique_email)
    attacker = "198.51.100.23"
    burst = [*([WRONG] * 30), PASSWORD]
    answers = await asyncio.gather(*(log_in(client, email, p, attacker) for p in burst))
    statuses = [a.status_code for a in answers]
    assert statuses.count(401) + statuses.count(200) <= 5, statuses
    assert statuses.count(429) >= len(burst) - 5
    # Whatever the burst met, the pair is locked now, the right password included.
    after = await log_in(client, email, PASSWORD, attacker)
    assert after.status_code == 429, after.text
    # The owner, elsewhere, is not.
    assert (await log_in(client, email, PASSWORD, "203.0.113.23")).status_code == 200


async def test_the_right_password_sent_many_times_at_once_locks_nothing(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """A client logging in from several tabs at once: those past the limit's number in
    flight are asked to retry in a second, and nothing is locked, as nothing failed."""
    email = await account(client, unique_email)
    owner = "203.0.113.61"
    answers = await asyncio.gather(*(log_in(client, email, PASSWORD, owner) for _ in range(12)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 5, statuses
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.headers["retry-after"] == "1", refused.text
        assert "at once" in refused.json()["error"]["message"]
    for _ in range(3):
        again = await log_in(client, email, PASSWORD, owner)
        assert again.status_code == 200, again.text


async def test_one_wrong_password_beside_right_ones_at_once_locks_nothing(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """A client with a stale saved password in one tab and the right one in four: as many
    attempts as the limit were being checked when the wrong one failed, but one failure
    is not five, and the address stays open."""
    email = await account(client, unique_email)
    for round_ in range(4):
        owner = f"203.0.113.{70 + round_}"
        tries = [WRONG, PASSWORD, PASSWORD, PASSWORD, PASSWORD]
        answers = await asyncio.gather(*(log_in(client, email, p, owner) for p in tries))
        assert answers[0].status_code == 401, answers[0].text
        again = await log_in(client, email, PASSWORD, owner)
        assert again.status_code == 200, again.text
