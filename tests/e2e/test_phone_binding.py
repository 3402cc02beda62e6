"""Binding a phone needs the account owner's proof, not only an access token: the current
password (with its own attempt limit), or a code sent to the phone already bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from bloghub.commands.context import Caller
from bloghub.commands.users import bind_phone
from bloghub.errors import Conflict
from bloghub.settings import Settings
from tests.conftest import LiveServer
from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_sessions import account, bearer, login, password_change
from tests.e2e.test_sms_abuse import Site, site
from tests.e2e.test_sms_login import code_sent_to, new_phone, texts_to
from tests.sms_gateway import Gateway
from tests.wechat_server import APPID, SECRET, WeChatServer, wechat_server


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


async def test_a_phone_in_a_country_not_served_is_refused_before_any_proof(
    sms: Site, unique_email: Callable[[], str]
) -> None:
    """No code goes there, so none can bind it: 422 as the document's pattern says, before
    the password is checked or counted against the session's proofs."""
    token = (await login(sms.client, await account(sms.client, unique_email)))["access_token"]
    wrong = [{"current_password": "Not-it-42"}] * 6  # past the five a session may get wrong
    for proof in ({}, *wrong, {"current_password": PASSWORD}):
        refused = await bind(sms, token, phone="+12025550123", code="123456", **proof)
        assert refused.status_code == 422, (proof, refused.text)
        assert refused.json()["error"]["fields"] == {
            "phone": "only numbers starting +86 are served"
        }
    # No wrong password was counted: the session proves itself as often as before.
    phone = new_phone()
    code = await code_for(sms, phone, "bind")
    proven = await bind(sms, token, phone=phone, code=code, current_password=PASSWORD)
    assert proven.status_code == 200, proven.text


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


@pytest.fixture
async def wechat_sms(
    settings: Settings, live_api: LiveServer, gateway: Gateway
) -> AsyncIterator[tuple[Site, WeChatServer]]:
    """SMS codes and WeChat login on one site: an account made by WeChat has no password
    and no phone to prove itself with."""
    async with wechat_server({"code-w": ("openid-bind-race", None)}) as fake:
        wechat = {
            "wechat_appid": APPID,
            "wechat_secret": SecretStr(SECRET),
            "wechat_token_url": fake.token_url,
        }
        async with site(settings, gateway, **wechat) as s:
            yield s, fake


async def test_binds_at_once_on_an_account_with_nothing_to_prove_bind_one_phone(
    wechat_sms: tuple[Site, WeChatServer],
) -> None:
    """Only the first phone of such an account is bound on its code alone. Sent at once,
    the bindings after the first find the phone changed since they were asked (409),
    rather than replace it without the proof it now needs."""
    sms, _ = wechat_sms
    authurl = await sms.client.get("/v1/auth/wechat/authurl")
    state = parse_qs(urlsplit(authurl.json()["url"]).query)["state"][0]
    signed_in = await sms.client.get(f"/v1/auth/wechat/callback?code=code-w&state={state}")
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()["access_token"]
    phones = [new_phone() for _ in range(12)]
    codes = [await code_for(sms, phone, "bind") for phone in phones]

    async def bind_after(delay_s: float, phone: str, code: str) -> httpx.Response:
        # Spread out: some read the account before the first binding and take the
        # account's turn after it ended.
        await asyncio.sleep(delay_s)
        return await bind(sms, token, phone=phone, code=code)

    answers = await asyncio.gather(
        *(bind_after(i * 0.004, p, c) for i, (p, c) in enumerate(zip(phones, codes, strict=True)))
    )
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 1, [a.text for a in answers]
    assert set(statuses) <= {200, 409}, [a.text for a in answers]
    (bound,) = [p for p, a in zip(phones, answers, strict=True) if a.status_code == 200]
    assert await phone_of(sms, token) == f"+86{bound}"
    # Another phone now needs a code to the one bound.
    later = new_phone()
    alone = await bind(sms, token, phone=later, code=await code_for(sms, later, "bind"))
    assert alone.status_code == 401, alone.text


async def test_a_binding_proven_against_a_phone_since_replaced_is_refused(
    sms: Site, unique_email: Callable[[], str]
) -> None:
    """The rule behind the race above, step by step: a binding whose owner's proof rests on
    the account's phone (a code to it, or none while it had none) is refused once another
    binding changed that phone; a password's proof holds whatever the phone."""
    user_id = (await login(sms.client, await account(sms.client, unique_email)))["user"]["id"]
    commands, who = sms.live.container.commands, Caller(user_id, None)
    first, second, third, fourth = (f"+86{new_phone()}" for _ in range(4))

    async def bound(phone: str, **proof: Any) -> None:
        # The account's turn ends off the answer's path: under load the next change may
        # find it still held, and is retried as a client told to retry does.
        for _ in range(100):
            try:
                await bind_phone(commands, who, user_id=user_id, phone=phone, **proof)
                return
            except Conflict as exc:
                if "in progress" not in str(exc):
                    raise
            await asyncio.sleep(0.1)
        pytest.fail("the account's turn was never free")

    await bound(first, proven_with=None)
    with pytest.raises(Conflict, match="phone changed"):
        # Asked while the account had no phone, decided after ``first`` was bound.
        await bound(second, proven_with=None)
    await bound(third, proven_with=first)
    with pytest.raises(Conflict, match="phone changed"):
        await bound(fourth, proven_with=first)
    await bound(fourth)  # by password
    held = await commands.reservations.held_by("phone", user_id)
    assert held == [fourth] or fourth in held


async def test_an_account_with_a_password_is_erased_with_it_not_with_a_code(
    sms: Site, unique_email: Callable[[], str]
) -> None:
    """A code to the bound phone proves the owner only of an account without a password:
    accepted for one with a password, it let whoever held a session and read the owner's
    messages erase the account without knowing its password. The wrong kind of proof is
    refused saying which to send, and no erasure code is sent to such an account."""
    token = (await login(sms.client, await account(sms.client, unique_email)))["access_token"]
    phone = new_phone()
    # Without a phone it is told the same, not to bind one first (which would not help).
    unbound = await sms.ask(phone, "erase", token=token)
    assert unbound.status_code == 403, unbound.text
    assert "erase it with the password" in unbound.json()["error"]["message"]
    code = await code_for(sms, phone, "bind")
    bound = await bind(sms, token, phone=phone, code=code, current_password=PASSWORD)
    assert bound.status_code == 200, bound.text

    sent = len(texts_to(sms.gateway, phone))
    asked = await sms.ask(phone, "erase", token=token)
    assert asked.status_code == 403, asked.text
    assert "erase it with the password" in asked.json()["error"]["message"]
    assert len(texts_to(sms.gateway, phone)) == sent
    by_code = await sms.client.request(
        "DELETE", "/v1/users/me", json={"code": "123456"}, headers=bearer(token)
    )
    assert by_code.status_code == 401, by_code.text
    assert by_code.json()["error"]["fields"] == {
        "password": "required for an account with a password"
    }
    assert (await sms.client.get("/v1/users/me", headers=bearer(token))).status_code == 200
    erased = await sms.client.request(
        "DELETE", "/v1/users/me", json={"password": PASSWORD}, headers=bearer(token)
    )
    assert erased.status_code == 204, erased.text


async def test_an_account_without_a_password_is_told_how_to_set_one(sms: Site) -> None:
    """An SMS login's account has no password: a password change or a password given to
    erase it was answered "the password is wrong", which no one can act on."""
    phone = new_phone()
    code = await code_for(sms, phone, "login")
    first = await sms.client.post("/v1/auth/sms/login", json={"phone": phone, "code": code})
    assert first.status_code == 200, first.text
    token = first.json()["access_token"]
    change = await password_change(sms.client, token)
    assert change.status_code == 401, change.text
    assert change.json()["error"]["fields"] == {"current_password": "this account has none"}
    assert "/v1/auth/password/reset" in change.json()["error"]["message"]
    erase = await sms.client.request(
        "DELETE", "/v1/users/me", json={"password": PASSWORD}, headers=bearer(token)
    )
    assert erase.status_code == 401, erase.text
    assert "purpose erase" in erase.json()["error"]["message"]
