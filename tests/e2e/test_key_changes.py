"""Changes of one account's unique keys (its username, its phone) take turns, and each
frees every other key of its kind the account holds by the write-side index: renames or
binds sent at once, or made while the read model lags, leave the account holding one name
and one phone (the ones its profile shows), and every other one free for anyone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from bloghub.commands.users import username_key
from bloghub.settings import Settings
from tests.conftest import LiveServer, pg, projecting
from tests.e2e.conduit_client import register, unique_name
from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_projector_lag import logged_in
from tests.e2e.test_projector_lag import site as lagging_site
from tests.e2e.test_sessions import account, bearer, login
from tests.e2e.test_sms_abuse import Site, site
from tests.e2e.test_sms_login import code_sent_to, new_phone
from tests.sms_gateway import Gateway
from tests.support import wait_until

AT_ONCE = 5


async def held(settings: Settings, kind: str, owner: str) -> list[str]:
    """What the write-side index says ``owner`` holds of ``kind``."""
    async with pg(settings) as conn:
        rows = await conn.fetch(
            "SELECT value FROM public.reservations WHERE kind = $1 AND owner_id = $2 "
            "ORDER BY value",
            kind,
            owner,
        )
    return [r["value"] for r in rows]


async def settled(
    settings: Settings, kind: str, owner: str, shown: Callable[[], Awaitable[str | None]]
) -> tuple[list[str], str | None]:
    """The keys of ``kind`` ``owner`` holds once they are one, the one its profile shows
    (freeing runs off the request path, and the profile waits for the projector)."""
    keys: list[str] = []
    profile: str | None = None
    for _ in range(100):
        keys, profile = await held(settings, kind, owner), await shown()
        if len(keys) == 1 and profile is not None and keys[0] == profile:
            break
        await asyncio.sleep(0.1)
    return keys, profile


def _statuses(answers: list[httpx.Response]) -> list[int]:
    statuses = [a.status_code for a in answers]
    # One wins; a rename that came while another was under way is told to retry.
    assert statuses.count(200) >= 1, [a.text for a in answers]
    for answer in answers:
        assert answer.status_code in (200, 409), answer.text
    return statuses


async def test_renames_sent_at_once_leave_the_account_one_username(
    client: httpx.AsyncClient, settings: Settings, unique_email: Callable[[], str]
) -> None:
    tokens = await login(client, await account(client, unique_email))
    auth, user_id = bearer(tokens["access_token"]), tokens["user"]["id"]
    first = unique_name("first")
    assert (await client.patch("/v1/users/me", json={"nickname": first}, headers=auth)).is_success
    names = [unique_name(f"n{i}-") for i in range(AT_ONCE)]

    answers = await asyncio.gather(
        *(client.patch("/v1/users/me", json={"nickname": n}, headers=auth) for n in names)
    )
    statuses = _statuses(list(answers))

    async def nickname() -> str | None:
        me = await client.get("/v1/users/me", headers=auth)
        shown: str | None = me.json()["user"]["nickname"]
        return None if shown is None else username_key(shown)

    keys, shown = await settled(settings, "username", user_id, nickname)
    assert keys == [shown], (statuses, keys, shown)
    assert shown in {username_key(n) for n in names}
    # Every other name is anyone's: no profile answers to it, and another account takes it.
    others = await login(client, await account(client, unique_email))
    for name in [first, *names]:
        if username_key(name) == shown:
            continue
        assert (await client.get(f"/api/profiles/{name}")).status_code == 404, name
        taken = await client.patch(
            "/v1/users/me", json={"nickname": name}, headers=bearer(others["access_token"])
        )
        assert taken.status_code == 200, (name, taken.text)


async def test_conduit_username_changes_sent_at_once_leave_one_username(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    jake = await register(client)
    user_id = await _user_id(settings, jake.username)
    assert user_id is not None
    names = [unique_name(f"c{i}-") for i in range(AT_ONCE)]

    answers = await asyncio.gather(
        *(client.put("/api/user", json={"user": {"username": n}}, headers=jake.auth) for n in names)
    )
    # RealWorld's update has no 409: a concurrent change is its 422, naming the reason.
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) >= 1, [a.text for a in answers]
    assert set(statuses) <= {200, 422}, [a.text for a in answers]

    async def username() -> str | None:
        shown: str = (await client.get("/api/user", headers=jake.auth)).json()["user"]["username"]
        return username_key(shown)

    keys, shown = await settled(settings, "username", user_id, username)
    assert keys == [shown], (statuses, keys, shown)
    other = await register(client)
    for name in [jake.username, *names]:
        if username_key(name) == shown:
            continue
        assert (await client.get(f"/api/profiles/{name}")).status_code == 404, name
        taken = await client.put("/api/user", json={"user": {"username": name}}, headers=other.auth)
        assert taken.status_code == 200, (name, taken.text)


async def _user_id(settings: Settings, username: str) -> str | None:
    async with pg(settings) as conn:
        owner: str | None = await conn.fetchval(
            "SELECT owner_id FROM public.reservations WHERE kind = 'username' AND value = $1",
            username_key(username),
        )
    return owner


async def test_renames_while_the_read_model_lags_free_every_name_given_up(run_id: str) -> None:
    """The users projector is stopped: the read model still has the first name when the
    account is renamed twice. Both names given up are freed all the same."""
    async with lagging_site(run_id, "key_lag") as at:
        own, client = at.settings, at.client
        first, second, third = (unique_name(s) for s in ("first", "second", "third"))
        async with projecting(own, "users"):
            user_id, auth = await logged_in(client, f"keys-a-{run_id}@example.com")
            _, other = await logged_in(client, f"keys-b-{run_id}@example.com")
            named = await client.patch("/v1/users/me", json={"nickname": first}, headers=auth)
            assert named.status_code == 200, named.text
            assert await projected_nickname(own, user_id) == first

        for name in (second, third):  # the read model says "first" throughout
            renamed = await client.patch("/v1/users/me", json={"nickname": name}, headers=auth)
            assert renamed.status_code == 200, renamed.text
        # Not projected: the test's premise.
        assert await projected_nickname(own, user_id, wait=False) == first

        for _ in range(50):
            if await held(own, "username", user_id) == [username_key(third)]:
                break
            await asyncio.sleep(0.1)
        assert await held(own, "username", user_id) == [username_key(third)]
        for name in (first, second):
            assert (await client.get(f"/api/profiles/{name}")).status_code == 404, name
            taken = await client.patch("/v1/users/me", json={"nickname": name}, headers=other)
            assert taken.status_code == 200, (name, taken.text)


async def projected_nickname(settings: Settings, user_id: str, *, wait: bool = True) -> str | None:
    """The nickname the users read model has for the account (once it has one)."""
    nickname: str | None = None
    async with pg(settings) as conn:
        for _ in range(100):
            nickname = await conn.fetchval(
                "SELECT nickname FROM users_g1.users WHERE id = $1::uuid", user_id
            )
            if nickname is not None or not wait:
                break
            await asyncio.sleep(0.1)
    return nickname


@pytest.fixture
async def sms(settings: Settings, live_api: LiveServer, gateway: Gateway) -> AsyncIterator[Site]:
    async with site(settings, gateway) as s:
        yield s


async def _code(sms: Site, phone: str, purpose: str) -> str:
    assert (await sms.ask(phone, purpose)).status_code == 200
    return code_sent_to(sms.gateway, phone)


async def test_phones_bound_at_once_leave_one_phone_that_logs_in(
    sms: Site, settings: Settings, unique_email: Callable[[], str]
) -> None:
    tokens = await login(sms.client, await account(sms.client, unique_email))
    auth, user_id = bearer(tokens["access_token"]), tokens["user"]["id"]
    phones = [new_phone() for _ in range(3)]
    codes = [await _code(sms, phone, "bind") for phone in phones]

    def bind(phone: str, code: str) -> Awaitable[httpx.Response]:
        body: dict[str, Any] = {"phone": phone, "code": code, "current_password": PASSWORD}
        return sms.client.post("/v1/users/me/phone", json=body, headers=auth)

    answers = await asyncio.gather(*(bind(p, c) for p, c in zip(phones, codes, strict=True)))
    statuses = _statuses(list(answers))

    async def phone_shown() -> str | None:
        shown: str | None = (await sms.client.get("/v1/users/me", headers=auth)).json()["user"][
            "phone"
        ]
        return shown

    keys, shown = await settled(settings, "phone", user_id, phone_shown)
    assert keys == [shown], (statuses, keys, shown)
    for phone in phones:
        logged = await sms.log_in(phone, await _code(sms, phone, "login"))
        assert logged.status_code == 200, logged.text
        if f"+86{phone}" == shown:
            assert logged.json()["user"]["id"] == user_id
        else:
            # Free: the first login by it makes an account of its own.
            assert logged.json()["user"]["id"] != user_id, phone


async def test_a_phone_bound_again_frees_the_one_before(
    sms: Site, settings: Settings, unique_email: Callable[[], str]
) -> None:
    tokens = await login(sms.client, await account(sms.client, unique_email))
    auth, user_id = bearer(tokens["access_token"]), tokens["user"]["id"]
    old, new = new_phone(), new_phone()
    body = {"phone": old, "code": await _code(sms, old, "bind"), "current_password": PASSWORD}
    assert (await sms.client.post("/v1/users/me/phone", json=body, headers=auth)).is_success
    body = {"phone": new, "code": await _code(sms, new, "bind"), "current_password": PASSWORD}
    changed = await sms.client.post("/v1/users/me/phone", json=body, headers=auth)
    assert changed.status_code == 200, changed.text

    async def freed() -> bool:  # off the request path
        return await held(settings, "phone", user_id) == [f"+86{new}"]

    await wait_until(freed, timeout_s=30)
    stranger = await sms.log_in(old, await _code(sms, old, "login"))
    assert stranger.json()["user"]["id"] != user_id


async def test_a_name_taken_back_is_not_freed_by_a_late_free_of_it(
    client: httpx.AsyncClient,
    settings: Settings,
    live_api: LiveServer,
    unique_email: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Renamed A to B while the index refuses to free A for a while, then back to A: the
    account keeps A. The turn of the first rename ends only once A is freed, so the rename
    back waits for it (409 meanwhile) and takes A afresh; no free of A retried later can
    take it from the account and hand it to someone else."""
    tokens = await login(client, await account(client, unique_email))
    auth, user_id = bearer(tokens["access_token"]), tokens["user"]["id"]
    a, b = unique_name("back-a"), unique_name("back-b")
    assert (await client.patch("/v1/users/me", json={"nickname": a}, headers=auth)).is_success
    reservations = live_api.container.commands.reservations
    release_confirmed = reservations.release_confirmed
    refusals = {"left": 3}

    async def refusing(kind: str, value: str, owner: str) -> None:
        if value == username_key(a) and refusals["left"]:
            refusals["left"] -= 1
            raise ConnectionError("the index is unwell")
        await release_confirmed(kind, value, owner)

    monkeypatch.setattr(reservations, "release_confirmed", refusing)
    assert (await client.patch("/v1/users/me", json={"nickname": b}, headers=auth)).is_success
    for _ in range(100):
        back = await client.patch("/v1/users/me", json={"nickname": a}, headers=auth)
        if back.status_code != 409:
            break
        await asyncio.sleep(0.1)
    assert back.status_code == 200, back.text
    assert refusals["left"] == 0
    await asyncio.sleep(1)  # any free still pending would have run by now
    other = await login(client, await account(client, unique_email))
    taken = await client.patch(
        "/v1/users/me", json={"nickname": a}, headers=bearer(other["access_token"])
    )
    assert taken.status_code == 409, taken.text
    assert username_key(a) in await held(settings, "username", user_id)
