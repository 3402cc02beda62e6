"""SMS codes over HTTP: login (the first one makes the account), binding a phone, password
reset, the per-phone cooldown, and a throttled message delivered later by the worker."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bloghub.commands.users import ACCOUNT_TURN
from bloghub.ids import new_id_str
from bloghub.settings import Settings
from tests.conftest import LiveServer, isolated, serve
from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_sessions import account, bearer, login
from tests.sms_gateway import Gateway
from tests.support import wait_until


@dataclass
class SmsSite:
    client: httpx.AsyncClient
    gateway: Gateway
    live: LiveServer


@pytest.fixture
async def site(
    settings: Settings, live_api: LiveServer, gateway: Gateway
) -> AsyncIterator[SmsSite]:
    configured = settings.model_copy(
        update={
            "sms_gateways": [gateway.url],
            "sms_rate_limit": 1_000,
            "sms_retry_spacing_s": 0.2,
            "sms_worker_poll_s": 0.1,
        }
    )
    async with (
        serve(configured) as live,
        httpx.AsyncClient(
            base_url=live.url, headers={"user-agent": "bloghub-tests/1"}, timeout=10
        ) as client,
    ):
        yield SmsSite(client, gateway, live)


def new_phone() -> str:
    return f"138{secrets.randbelow(10**8):08d}"


def code_sent_to(gateway: Gateway, phone: str) -> str:
    texts = texts_to(gateway, phone)
    assert texts, f"no SMS reached {phone}"
    found = re.search(r"\b(\d{6})\b", texts[-1])
    assert found is not None
    return found.group(1)


async def ask_code(site: SmsSite, phone: str, purpose: str = "login", token: str = "") -> str:
    sent_before = len(texts_to(site.gateway, phone))
    answer = await site.client.post(
        "/v1/auth/sms/code",
        json={"phone": phone, "purpose": purpose},
        headers={"authorization": f"Bearer {token}"} if token else {},
    )
    assert answer.status_code == 200, answer.text

    async def arrived() -> bool:  # a reset code is sent after the answer
        return len(texts_to(site.gateway, phone)) > sent_before

    await wait_until(arrived, timeout_s=10)
    return code_sent_to(site.gateway, phone)


def texts_to(gateway: Gateway, phone: str) -> list[str]:
    return [m["text"] for m in gateway.received if m["phone"].endswith(phone[-11:])]


async def test_first_sms_login_makes_the_account_and_the_next_finds_it(site: SmsSite) -> None:
    phone = new_phone()
    code = await ask_code(site, phone)
    assert len(code) == 6
    first = await site.client.post("/v1/auth/sms/login", json={"phone": phone, "code": code})
    assert first.status_code == 200, first.text
    me = await site.client.get("/v1/users/me", headers=bearer(first.json()["access_token"]))
    assert me.json()["user"]["phone"] == f"+86{phone}"

    spent = await site.client.post("/v1/auth/sms/login", json={"phone": phone, "code": code})
    assert spent.status_code == 401, "a right code works once"

    cooldown = await site.client.post("/v1/auth/sms/code", json={"phone": f"+86{phone}"})
    assert cooldown.status_code == 429
    assert 1 <= int(cooldown.headers["retry-after"]) <= 60


async def test_a_login_waits_for_another_first_login_of_the_phone_to_settle(
    site: SmsSite,
) -> None:
    """Another first login of the phone has claimed it and is on its way to the log; if
    the log refuses it, its claim is released and no account comes of it. A login meanwhile
    waits for that claim to settle: it is never given a session for an account that does
    not exist, and once the claim is released it makes the account itself."""
    phone = new_phone()
    code = await ask_code(site, phone)
    reservations = site.live.container.commands.reservations
    ghost = new_id_str()
    await reservations.reserve("phone", f"+86{phone}", ghost)  # the other login, in flight

    async def refused_by_the_log() -> None:
        await asyncio.sleep(0.5)
        await reservations.release("phone", f"+86{phone}", ghost)

    release = asyncio.create_task(refused_by_the_log())
    answer = await site.client.post("/v1/auth/sms/login", json={"phone": phone, "code": code})
    await release
    assert answer.status_code == 200, answer.text
    user_id = answer.json()["user"]["id"]
    assert user_id != ghost
    me = await site.client.get("/v1/users/me", headers=bearer(answer.json()["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["user"]["phone"] == f"+86{phone}"


async def test_guessing_stops_after_three_tries(site: SmsSite) -> None:
    phone = new_phone()
    code = await ask_code(site, phone)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(3):
        answer = await site.client.post("/v1/auth/sms/login", json={"phone": phone, "code": wrong})
        assert answer.status_code == 401
    late = await site.client.post("/v1/auth/sms/login", json={"phone": phone, "code": code})
    assert late.status_code == 401
    assert "ask for a new one" in late.json()["error"]["message"]
    mistyped = await site.client.post("/v1/auth/sms/login", json={"phone": phone, "code": "12345"})
    assert mistyped.status_code == 422
    assert mistyped.json()["error"]["fields"] == {
        "code": "must be the 6 digits of the code sent by SMS"
    }


async def test_login_without_a_code_sent_is_a_wrong_code(site: SmsSite) -> None:
    answer = await site.client.post(
        "/v1/auth/sms/login", json={"phone": new_phone(), "code": "123456"}
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["fields"] == {"code": "wrong or expired"}


@pytest.mark.parametrize(
    "body",
    [
        {"phone": "12345"},
        {"phone": "+0123456789"},
        {"phone": "138-0013-8000"},
        {"phone": 13800138000},
        {"phone": "13800138000", "purpose": "spam"},
        {},
    ],
)
async def test_bad_phones_and_purposes_are_422(site: SmsSite, body: dict[str, object]) -> None:
    answer = await site.client.post("/v1/auth/sms/code", json=body)
    assert answer.status_code == 422, answer.text


async def with_a_phone(
    site: SmsSite, unique_email: Callable[[], str]
) -> tuple[str, dict[str, Any], str]:
    """An account with a password that has bound a phone: its email, tokens and phone."""
    email = await account(site.client, unique_email)
    tokens = await login(site.client, email)
    phone = new_phone()
    code = await ask_code(site, phone, "bind")
    bound = await site.client.post(
        "/v1/users/me/phone",
        json={"phone": phone, "code": code, "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert bound.status_code == 200, bound.text
    assert bound.json()["user"]["phone"] == f"+86{phone}"
    return email, tokens, phone


async def test_bind_a_phone_then_reset_the_password_with_it(
    site: SmsSite, unique_email: Callable[[], str]
) -> None:
    email, tokens, phone = await with_a_phone(site, unique_email)

    reset_code = await ask_code(site, phone, "reset")
    reset = await site.client.post(
        "/v1/auth/password/reset",
        json={"phone": phone, "code": reset_code, "new_password": "Reset-pass-9"},
    )
    assert reset.status_code == 204, reset.text
    after = {"bloghub-after": reset.headers["bloghub-position"]}
    old = await site.client.get("/v1/users/me", headers={**bearer(tokens["access_token"]), **after})
    assert old.status_code == 401, "a reset ends every session"
    fresh = await site.client.post(
        "/v1/auth/login", json={"email": email, "password": "Reset-pass-9"}, headers=after
    )
    assert fresh.status_code == 200


async def test_a_reset_sent_during_another_change_waits_its_turn(
    site: SmsSite, unique_email: Callable[[], str]
) -> None:
    """The reset's code is spent before it takes the account's turn: while another change
    holds the turn (a password change hashing, say), it waits, never answers "retry" with
    a code that no longer works."""
    email, tokens, phone = await with_a_phone(site, unique_email)
    reset_code = await ask_code(site, phone, "reset")

    index = site.live.container.commands.reservations
    turn = (ACCOUNT_TURN, tokens["user"]["id"], "another change")
    await index.reserve(*turn)
    try:
        reset = asyncio.create_task(
            site.client.post(
                "/v1/auth/password/reset",
                json={"phone": phone, "code": reset_code, "new_password": "Reset-pass-9"},
            )
        )
        await asyncio.sleep(0.5)
        assert not reset.done(), reset.result().text
    finally:
        await index.release(*turn)
    answer = await reset
    assert answer.status_code == 204, answer.text
    after = {"bloghub-after": answer.headers["bloghub-position"]}
    fresh = await site.client.post(
        "/v1/auth/login", json={"email": email, "password": "Reset-pass-9"}, headers=after
    )
    assert fresh.status_code == 200, fresh.text


async def test_a_phone_of_another_account_cannot_be_bound(
    site: SmsSite, unique_email: Callable[[], str]
) -> None:
    phone = new_phone()
    taken = await site.client.post(
        "/v1/auth/sms/login", json={"phone": phone, "code": await ask_code(site, phone)}
    )
    assert taken.status_code == 200
    other = await login(site.client, await account(site.client, unique_email))
    await asyncio.sleep(1.1)  # the login code's cooldown is per purpose; bind has its own
    code = await ask_code(site, phone, "bind")
    clash = await site.client.post(
        "/v1/users/me/phone",
        json={"phone": phone, "code": code, "current_password": PASSWORD},
        headers=bearer(other["access_token"]),
    )
    assert clash.status_code == 409


async def test_a_throttled_code_is_queued_then_delivered_by_the_worker(
    run_id: str, gateway: Gateway
) -> None:
    # A database of its own: the outbox is shared by every API process of a deployment,
    # and the session's other app (console provider) would deliver this message itself.
    configured = isolated(
        run_id,
        "sms",
        sms_gateways=[gateway.url],
        sms_rate_limit=1,
        sms_rate_window_s=2.0,
        sms_retry_spacing_s=0.2,
        sms_worker_poll_s=0.1,
    )
    async with (
        configured as own,
        serve(own) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        first, second = new_phone(), new_phone()
        assert (await client.post("/v1/auth/sms/code", json={"phone": first})).status_code == 200
        queued = await client.post("/v1/auth/sms/code", json={"phone": second})
        assert queued.status_code == 202
        assert queued.json() == {"status": "queued"}
        assert not [m for m in gateway.received if m["phone"].endswith(second)]
        for _ in range(300):  # the window is 2 s; a loaded machine may take longer
            if [m for m in gateway.received if m["phone"].endswith(second)]:
                break
            await asyncio.sleep(0.1)
        assert code_sent_to(gateway, second)
