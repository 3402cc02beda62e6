"""Binding a phone needs the account owner's proof, not only an access token: the current
password (with its own attempt limit), or a code sent to the phone already bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bloghub.settings import Settings
from tests.conftest import LiveServer
from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_sessions import account, bearer, login
from tests.e2e.test_sms_abuse import Site, site
from tests.e2e.test_sms_login import code_sent_to, new_phone
from tests.sms_gateway import Gateway


@pytest.fixture
async def sms(settings: Settings, live_api: LiveServer, gateway: Gateway) -> AsyncIterator[Site]:
    async with site(settings, gateway) as s:
        yield s


async def bind(sms: Site, token: str, **body: Any) -> httpx.Response:
    return await sms.client.post("/v1/users/me/phone", json=body, headers=bearer(token))


async def phone_of(sms: Site, token: str) -> str | None:
    me = await sms.client.get("/v1/users/me", headers=bearer(token))
    phone: str | None = me.json()["user"]["phone"]
    return phone


async def code_for(sms: Site, phone: str, purpose: str, token: str = "") -> str:
    assert (await sms.ask(phone, purpose, token=token)).status_code == 200
    return code_sent_to(sms.gateway, phone)


async def test_a_token_alone_cannot_bind_a_phone(
    sms: Site, unique_email: Callable[[], str]
) -> None:
    token = (await login(sms.client, await account(sms.client, unique_email)))["access_token"]
    phone = new_phone()
    code = await code_for(sms, phone, "bind")

    bare = await bind(sms, token, phone=phone, code=code)
    assert bare.status_code == 401, bare.text
    assert bare.json()["error"]["fields"] == {"current_password": "required"}
    wrong = await bind(sms, token, phone=phone, code=code, current_password="Not-it-42")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["fields"] == {"current_password": "wrong"}
    assert await phone_of(sms, token) is None

    proven = await bind(sms, token, phone=phone, code=code, current_password=PASSWORD)
    assert proven.status_code == 200, proven.text
    assert proven.json()["user"]["phone"] == f"+86{phone}"


@pytest.mark.parametrize("at_once", [False, True], ids=["one_by_one", "at_once"])
async def test_the_current_password_check_has_its_own_attempt_limit(
    sms: Site, unique_email: Callable[[], str], at_once: bool
) -> None:
    """Five wrong guesses lock it for this session, one after another or sent at once (each
    is counted before it is checked: a burst gets no more guesses)."""
    email = await account(sms.client, unique_email)
    token = (await login(sms.client, email))["access_token"]
    phone = new_phone()
    code = await code_for(sms, phone, "bind")
    if at_once:
        guesses = [
            bind(sms, token, phone=phone, code=code, current_password=f"Not-it-{i}")
            for i in range(20)
        ]
        statuses = [a.status_code for a in await asyncio.gather(*guesses)]
        assert statuses.count(401) <= 5, statuses
        assert statuses.count(429) >= 15, statuses
    else:
        for _ in range(5):
            wrong = await bind(sms, token, phone=phone, code=code, current_password="Not-it-42")
            assert wrong.status_code == 401
    locked = await bind(sms, token, phone=phone, code=code, current_password=PASSWORD)
    assert locked.status_code == 429, "the lock holds even for the right password"
    assert 0 < int(locked.headers["retry-after"]) <= 900
    assert await phone_of(sms, token) is None
    relogin = await sms.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert relogin.status_code == 200, "the bind lock is not a login lock"


async def changing_phone(sms: Site) -> tuple[str, str, str, str]:
    """An account made by SMS login to one phone, with a bind code sent to another: its
    token, the old phone, the new one and the new one's code."""
    old, new = new_phone(), new_phone()
    made = await sms.log_in(old, await code_for(sms, old, "login"))
    return made.json()["access_token"], old, new, await code_for(sms, new, "bind")


async def test_a_phone_account_changes_phone_with_a_code_to_the_phone_it_has(
    sms: Site,
) -> None:
    token, old, new, code = await changing_phone(sms)

    bare = await bind(sms, token, phone=new, code=code)
    assert bare.status_code == 401
    assert bare.json()["error"]["fields"] == {
        "current_phone_code": "required (a code sent to the bound phone)"
    }
    proof = await code_for(sms, old, "owner", token)
    changed = await bind(sms, token, phone=new, code=code, current_phone_code=proof)
    assert changed.status_code == 200, changed.text
    assert await phone_of(sms, token) == f"+86{new}"


async def test_a_wrong_code_for_the_new_phone_leaves_the_old_phones_code_good(
    sms: Site,
) -> None:
    # Two codes prove a change of phone; one mistake must not use up the other proof (it
    # costs a wait and one of the day's codes to the old phone).
    token, old, new, code = await changing_phone(sms)
    proof = await code_for(sms, old, "owner", token)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(2):
        mistaken = await bind(sms, token, phone=new, code=wrong, current_phone_code=proof)
        assert mistaken.status_code == 401, mistaken.text
        assert mistaken.json()["error"]["fields"] == {"code": "wrong or expired"}
    changed = await bind(sms, token, phone=new, code=code, current_phone_code=proof)
    assert changed.status_code == 200, changed.text
    assert changed.json()["user"]["phone"] == f"+86{new}"
    again = await bind(sms, token, phone=new, code=code, current_phone_code=proof)
    assert again.status_code == 401, "both codes were spent by the bind"


async def test_a_password_change_guesses_under_the_same_attempt_limit(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """The limit is the session's, not the account's: the guessing session is locked, and
    a session that has not failed (the owner logging in again) still changes the password.
    A lock of the whole account would let a stolen session keep the owner from the one
    change that ends it."""
    email = await account(client, unique_email)
    token = (await login(client, email))["access_token"]

    async def change(current: str, token: str = token) -> httpx.Response:
        new = "Another-Pass-9876"
        return await client.post(
            "/v1/users/me/password",
            json={"current_password": current, "new_password": new, "confirm_password": new},
            headers=bearer(token),
        )

    for _ in range(5):
        assert (await change("Not-it-42")).status_code == 401
    locked = await change(PASSWORD)
    assert locked.status_code == 429, "a stolen token cannot keep guessing the password"
    relogin = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert relogin.status_code == 200, "the password is unchanged and login still works"
    changed = await change(PASSWORD, relogin.json()["access_token"])
    assert changed.status_code == 204, "another session of the owner is not locked"
