"""The owner's proof (the current password, or an erase code) is limited per session: a
stolen session that keeps guessing locks only its own proofs, never the owner's from
another session, and every route that asks for the proof (password change, phone
binding, erasure) draws on that one budget of guesses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_erasure import erase
from tests.e2e.test_phone_binding import (
    bind,
    code_for,
    phone_of,
    sms,  # noqa: F401  (a fixture)
)
from tests.e2e.test_sessions import account, bearer, login, password_change
from tests.e2e.test_sms_abuse import Site
from tests.e2e.test_sms_login import new_phone
from tests.support import once_caught_up

NEW_PASSWORD = "N3w-password!"  # what ``password_change`` sets
WRONG = "Not-it-42"


async def refreshed(client: httpx.AsyncClient, tokens: dict[str, Any]) -> dict[str, Any]:
    """The session's next token pair, as a holder who keeps it alive gets it."""
    answer = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert answer.status_code == 200, answer.text
    pair: dict[str, Any] = answer.json()
    return pair


async def assert_locked(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "rate_limited"
    assert 0 < int(answer.headers["retry-after"]) <= 900


async def test_a_guessing_session_locks_only_itself_and_the_owner_ends_it(
    sms: Site,  # noqa: F811
    unique_email: Callable[[], str],
) -> None:
    client = sms.client
    email = await account(client, unique_email)
    thief, owner = await login(client, email), await login(client, email)
    for _ in range(5):
        guess = await password_change(client, thief["access_token"], current=WRONG)
        assert guess.status_code == 401, guess.text
    thief = await refreshed(client, thief)  # the lock is the session's, whatever its tokens
    await assert_locked(await password_change(client, thief["access_token"]))
    phone = new_phone()
    code = await code_for(sms, phone, "bind")
    await assert_locked(
        await bind(sms, thief["access_token"], phone=phone, code=code, current_password=PASSWORD)
    )

    # The owner, from their own session, still proves the password: binds a phone to reset
    # by, and changes the password, which ends the thief's session.
    bound = await bind(
        sms, owner["access_token"], phone=phone, code=code, current_password=PASSWORD
    )
    assert bound.status_code == 200, bound.text
    changed = await password_change(client, owner["access_token"])
    assert changed.status_code == 204, changed.text
    after = {"bloghub-after": changed.headers["bloghub-position"]}
    ended = await client.get("/v1/users/me", headers={**bearer(thief["access_token"]), **after})
    assert ended.status_code == 401, ended.text
    kept = await client.post("/v1/auth/refresh", json={"refresh_token": thief["refresh_token"]})
    assert kept.status_code == 401, "the thief cannot keep the session alive either"
    assert await phone_of(sms, owner["access_token"]) == f"+86{phone}"


async def test_the_owner_erases_from_another_session_while_a_guessing_one_is_locked(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    thief, owner = await login(client, email), await login(client, email)
    for _ in range(5):
        assert (await erase(client, thief["access_token"], password=WRONG)).status_code == 401
    await assert_locked(await erase(client, thief["access_token"], password=PASSWORD))
    erased = await erase(client, owner["access_token"], password=PASSWORD)
    assert erased.status_code == 204, erased.text


async def test_erasure_guesses_share_one_budget_with_password_change_guesses(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    token = (await login(client, email))["access_token"]
    for _ in range(3):
        assert (await erase(client, token, password=WRONG)).status_code == 401
    for _ in range(2):
        assert (await password_change(client, token, current=WRONG)).status_code == 401
    await assert_locked(await erase(client, token, password=PASSWORD))
    await assert_locked(await password_change(client, token))
    me = await client.get("/v1/users/me", headers=bearer(token))
    assert me.status_code == 200, "nothing was erased"


async def test_only_failed_proofs_count_a_right_one_clears_them(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """Four wrong erasure proofs, the right password (for a change), four more wrong: the
    session is never locked, and the right password then erases (nine tries in all)."""
    email = await account(client, unique_email)
    token = (await login(client, email))["access_token"]
    for _ in range(4):
        assert (await erase(client, token, password=WRONG)).status_code == 401
    changed = await password_change(client, token)
    assert changed.status_code == 204, changed.text
    for _ in range(4):
        assert (await erase(client, token, password=WRONG)).status_code == 401
    erased = await erase(client, token, password=NEW_PASSWORD)
    assert erased.status_code == 204, erased.text
    gone = await once_caught_up(
        lambda: client.post("/v1/auth/login", json={"email": email, "password": NEW_PASSWORD})
    )
    assert gone.status_code == 401, "the account is erased"
