"""Erasing an account over HTTP: it needs proof of ownership; once done the person is gone
(no login, no session, no profile), their articles read under a deleted author, and their
email or phone can make a new account."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any, cast

import httpx
import pytest

from bloghub.adapters.postgres.user_keys import AccountErased, UserKeys
from bloghub.commands.context import Caller
from bloghub.commands.sessions import start_session
from bloghub.commands.users import erase_user, login_epoch
from tests.conftest import LiveServer, isolated, projecting, serve
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.e2e.test_sessions import account, bearer, login
from tests.e2e.test_sms_login import SmsSite, ask_code, new_phone, site  # noqa: F401
from tests.support import wait_until


async def erase(client: httpx.AsyncClient, token: str, **proof: str) -> httpx.Response:
    return await client.request("DELETE", "/v1/users/me", json=proof, headers=bearer(token))


async def published_article(client: httpx.AsyncClient, token: str) -> str:
    body = {"title": "Kept after me", "content": "Words that stay.", "tags": ["farewell"]}
    created = await client.post("/v1/articles", json=body, headers=bearer(token))
    assert created.status_code == 201, created.text
    article_id: str = created.json()["article"]["id"]
    published = await client.post(f"/v1/articles/{article_id}/publish", headers=bearer(token))
    assert published.status_code == 200, published.text
    return article_id


async def test_a_wrong_password_erases_nothing(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    tokens = await login(client, email)
    refused = await erase(client, tokens["access_token"], password="not-the-Pass1!")
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["fields"] == {"password": "wrong"}

    me = await client.get("/v1/users/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["user"]["email"] == email
    assert (await login(client, email))["user"]["id"] == tokens["user"]["id"]
    again = await client.post("/v1/users", json=signup_body(email))
    assert again.status_code == 409, "the address is still held"


async def test_erasure_needs_exactly_one_proof(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    tokens = await login(client, await account(client, unique_email))
    for proof in ({}, {"password": PASSWORD, "code": "123456"}):
        answer = await erase(client, tokens["access_token"], **proof)
        assert answer.status_code == 422, answer.text
    anonymous = await client.request("DELETE", "/v1/users/me", json={"password": PASSWORD})
    assert anonymous.status_code == 401


async def test_erased_person_is_gone_and_their_articles_stay_under_a_deleted_author(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    tokens = await login(client, email)
    user_id, token = tokens["user"]["id"], tokens["access_token"]
    named = await client.patch("/v1/users/me", json={"nickname": "Ada"}, headers=bearer(token))
    assert named.status_code == 200
    article_id = await published_article(client, token)
    # Read once before, so the author's cached public profile must be cleared by the erasure.
    before = await client.get(f"/v1/articles/{article_id}", headers=bearer(token))
    assert before.json()["article"]["author"] == {
        "id": user_id,
        "nickname": "Ada",
        "deleted": False,
    }
    assert (await client.get(f"/v1/users/{user_id}")).json()["user"]["nickname"] == "Ada"

    erased = await erase(client, token, password=PASSWORD)
    assert erased.status_code == 204, erased.text
    after = {"bloghub-after": erased.headers["bloghub-position"]}

    old_login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert old_login.status_code == 401
    assert (await client.get("/v1/users/me", headers=bearer(token))).status_code == 401
    refresh = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    assert (await client.get(f"/v1/users/{user_id}", headers=after)).status_code == 404

    article = await client.get(f"/v1/articles/{article_id}", headers=after)
    assert article.status_code == 200
    assert article.json()["article"]["content"] == "Words that stay."
    deleted: dict[str, Any] = {"id": user_id, "nickname": None, "deleted": True}
    assert article.json()["article"]["author"] == deleted
    listed = await client.get("/v1/articles", params={"author": user_id}, headers=after)
    assert [a["author"] for a in listed.json()["articles"]] == [deleted]

    reborn = await client.post("/v1/users", json=signup_body(email))
    assert reborn.status_code == 201, "the address is free again"
    assert reborn.json()["user"]["id"] != user_id
    assert (await login(client, email))["user"]["id"] == reborn.json()["user"]["id"]


async def test_a_phone_only_account_is_erased_with_a_code_to_its_phone(
    site: SmsSite,  # noqa: F811
    live_api: LiveServer,
) -> None:
    phone = new_phone()
    code = await ask_code(site, phone)
    first = await site.client.post("/v1/auth/sms/login", json={"phone": phone, "code": code})
    assert first.status_code == 200, first.text
    user_id, token = first.json()["user"]["id"], first.json()["access_token"]

    no_password = await erase(site.client, token, password=PASSWORD)
    assert no_password.status_code == 401, "a phone-only account has no password to give"
    assert no_password.json()["error"]["fields"] == {"password": "this account has none"}
    login_code = await erase(site.client, token, code=code)
    assert login_code.status_code == 401, "a spent login code is no proof"
    # It says which code is: a user just texted another code knows what to ask for.
    assert "purpose erase" in login_code.json()["error"]["message"]

    erased = await erase(site.client, token, code=await ask_code(site, phone, "erase", token))
    assert erased.status_code == 204, erased.text
    assert (await site.client.get("/v1/users/me", headers=bearer(token))).status_code == 401
    after = {"bloghub-after": erased.headers["bloghub-position"]}
    assert (await site.client.get(f"/v1/users/{user_id}", headers=after)).status_code == 404

    # The phone is free: the next first login with it (after the code cooldown) makes a new
    # account instead of finding the erased one.
    assert await live_api.container.commands.reservations.get("phone", f"+86{phone}") is None


class _ShredWaits:
    """The account's keys as they are, but the shred of one waits for ``go``: an erasure
    held between ending the sessions and shredding the key, where a login can land."""

    def __init__(self, keys: UserKeys) -> None:
        self._keys = keys
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._keys, name)

    async def erase(self, user_id: str) -> None:
        await self.go.wait()
        await self._keys.erase(user_id)


async def test_a_phone_login_during_an_erasure_leaves_no_live_session(
    site: SmsSite,  # noqa: F811
) -> None:
    """A phone login that finds the account alive while its erasure is under way (the
    sessions ended, the key not yet shredded, the phone still held) and opens its session
    then: once the key is shredded, that session is ended too, and a login after the shred
    finds the account erased."""
    phone = new_phone()
    first = await site.client.post(
        "/v1/auth/sms/login", json={"phone": phone, "code": await ask_code(site, phone)}
    )
    assert first.status_code == 200, first.text
    user_id = first.json()["user"]["id"]
    deps = site.live.container.commands
    held = _ShredWaits(deps.keys)
    erasing = dataclasses.replace(deps, keys=cast(UserKeys, held))
    erasure = asyncio.create_task(erase_user(erasing, Caller(user_id, None), user_id=user_id))

    async def ended(session_id: str) -> bool:
        return not await deps.sessions.is_live(session_id, user_id)

    claims = deps.tokens.verify("access", first.json()["access_token"], "bloghub-tests/1")
    await wait_until(lambda: ended(claims.session_id), timeout_s=10)
    # The login, in that window: the account is not erased yet, so it opens a session.
    issued = await start_session(
        deps,
        Caller(None, None),
        user_id=user_id,
        method="sms",
        user_agent="bloghub-tests/1",
        credentials_epoch=await login_epoch(deps, user_id),
    )
    held.go.set()
    await erasure
    await wait_until(lambda: ended(issued.tokens.session_id), timeout_s=10)
    with pytest.raises(AccountErased):
        await login_epoch(deps, user_id)  # a login from now on finds it erased


async def test_an_erased_account_writes_and_reads_nothing_while_the_projectors_lag(
    run_id: str, unique_email: Callable[[], str]
) -> None:
    async with (
        isolated(run_id, "eraselag", read_wait_s=0.3) as s,
        serve(s) as live,
        httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=10) as client,
    ):
        async with projecting(s, "users", "articles"):
            tokens = await login(client, await account(client, unique_email))
            token = tokens["access_token"]
            assert (await client.get("/v1/users/me", headers=bearer(token))).status_code == 200
        # The projectors are stopped: the erasure is recorded, and not applied.
        erased = await erase(client, token, password=PASSWORD)
        assert erased.status_code == 204, erased.text

        body = {"title": "After me", "content": "Should not exist.", "tags": []}
        article = await client.post("/v1/articles", json=body, headers=bearer(token))
        assert article.status_code == 401, article.text
        renamed = await client.patch(
            "/v1/users/me", json={"nickname": "ghost"}, headers=bearer(token)
        )
        assert renamed.status_code == 401, renamed.text
        # Reads end too: the erasure ended every session in the session store.
        me = await client.get("/v1/users/me", headers=bearer(token))
        assert me.status_code == 401, me.text
        again = await client.post(
            "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert again.status_code == 401, again.text


async def test_guessing_the_password_to_erase_stops_after_five_tries(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """In this session: the limit is the one every proof of the owner is under
    (``test_owner_proof.py``), so another session of the owner may still erase."""
    tokens = await login(client, await account(client, unique_email))
    for _ in range(5):
        wrong = await erase(client, tokens["access_token"], password="guess-Pass1!")
        assert wrong.status_code == 401
    stopped = await erase(client, tokens["access_token"], password=PASSWORD)
    assert stopped.status_code == 429, "even the right password waits out the window"
    assert int(stopped.headers["retry-after"]) >= 1
    me = await client.get("/v1/users/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200, "nothing was erased"
