"""The token pair and sessions, over HTTP on the real pipeline."""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Literal

import httpx
import jwt
import pytest
from structlog.testing import capture_logs

from tests.conftest import LiveServer
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.support import once_caught_up


async def login(client: httpx.AsyncClient, email: str, **headers: str) -> dict[str, Any]:
    answer = await once_caught_up(
        lambda: client.post(
            "/v1/auth/login", json={"email": email, "password": PASSWORD}, headers=headers
        )
    )
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


async def account(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> str:
    email = unique_email()
    assert (await client.post("/v1/users", json=signup_body(email))).status_code == 201
    return email


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def password_change(
    client: httpx.AsyncClient, token: str, *, current: str = PASSWORD
) -> Awaitable[httpx.Response]:
    """The password changed to ``N3w-password!`` by the session of ``token``."""
    body = {
        "current_password": current,
        "new_password": "N3w-password!",
        "confirm_password": "N3w-password!",
    }
    return client.post("/v1/users/me/password", json=body, headers=bearer(token))


async def test_refresh_rotates_both_tokens(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    first = await login(client, await account(client, unique_email))
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert rotated.headers["x-refresh-token"] == second["refresh_token"]
    assert (
        await client.get("/v1/users/me", headers=bearer(second["access_token"]))
    ).status_code == 200
    by_header = await client.post(
        "/v1/auth/refresh", headers={"x-refresh-token": second["refresh_token"]}
    )
    assert by_header.status_code == 200


async def test_a_refresh_with_no_token_at_all_is_told_what_to_send(
    client: httpx.AsyncClient,
) -> None:
    """Neither the header nor a body: the credential is missing (401), not a body of the
    wrong media type; a body that is not JSON is still 415."""
    bare = await client.post("/v1/auth/refresh")
    assert bare.status_code == 401
    assert "x-refresh-token" in bare.json()["error"]["message"]
    text = await client.post(
        "/v1/auth/refresh", content=b"token", headers={"content-type": "text/plain"}
    )
    assert text.status_code == 415


async def test_reusing_a_refresh_token_ends_the_session(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    first = await login(client, await account(client, unique_email))
    rotated = (
        await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    replay = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert "already used" in replay.json()["error"]["message"]
    # The thief's replay ended the session: the legitimate new pair is dead too.
    me = await client.get("/v1/users/me", headers=bearer(rotated["access_token"]))
    assert me.status_code == 401
    again = await client.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert again.status_code == 401


async def test_concurrent_refreshes_of_one_token_leave_at_most_one_winner(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    first = await login(client, await account(client, unique_email))
    answers = await asyncio.gather(
        *(
            client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
            for _ in range(5)
        )
    )
    assert sorted(a.status_code for a in answers).count(200) <= 1
    assert sum(a.status_code == 401 for a in answers) >= 4


async def test_refresh_from_another_user_agent_is_refused(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    first = await login(client, await account(client, unique_email))
    stolen = await client.post(
        "/v1/auth/refresh",
        json={"refresh_token": first["refresh_token"]},
        headers={"user-agent": "evil/1.0"},
    )
    assert stolen.status_code == 401
    still = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert still.status_code == 200, "a refused foreign attempt does not burn the token"


async def test_a_browser_that_updated_itself_stays_signed_in(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """Browsers move their version every few weeks; a Conduit token lasts a week and has
    no refresh flow. The binding is to the client without its version numbers."""
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/{} Safari/537.36"
    email = await account(client, unique_email)
    signed = await client.post(
        "/api/users/login",
        json={"user": {"email": email, "password": PASSWORD}},
        headers={"user-agent": chrome.format("120.0.0.0")},
    )
    assert signed.status_code == 200, signed.text
    token = {"authorization": f"Token {signed.json()['user']['token']}"}
    updated = await client.get(
        "/api/user", headers={**token, "user-agent": chrome.format("121.0.6167.85")}
    )
    assert updated.status_code == 200, updated.text
    other = await client.get("/api/user", headers={**token, "user-agent": "curl/8.5.0"})
    assert other.status_code == 401


async def test_after_logout_neither_token_works(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    tokens = await login(client, await account(client, unique_email))
    out = await client.post("/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert out.status_code == 204
    me = await client.get("/v1/users/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401
    refresh = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401


async def test_access_token_is_not_a_refresh_token(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    tokens = await login(client, await account(client, unique_email))
    swapped = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert swapped.status_code == 401
    as_access = await client.get("/v1/users/me", headers=bearer(tokens["refresh_token"]))
    assert as_access.status_code == 401


def resigned(live_api: LiveServer, token: str, kind: str, changed: dict[str, object]) -> str:
    """``token`` with some of its claims changed, signed again with the server's own key."""
    settings = live_api.container.settings
    key = settings.access_token_secret if kind == "access" else settings.refresh_token_secret
    claims = jwt.decode(token, options={"verify_signature": False}) | changed
    return jwt.encode(claims, key.get_secret_value(), algorithm="HS256")


WRONG_CLAIMS: dict[str, tuple[str, dict[str, object]]] = {
    "access-sid-number": ("access", {"sid": 5}),
    "access-sid-list": ("access", {"sid": ["x"]}),
    "access-auth_time-text": ("access", {"auth_time": "x"}),
    "access-auth_time-ahead": ("access", {"auth_time": 4_102_444_800}),  # 2100
    "refresh-auth_time-text": ("refresh", {"auth_time": "x"}),
    # A lone surrogate: no store can take it as a key (it was a 500, and failed the
    # requests counted in the same Redis round trip).
    "access-sub-surrogate": ("access", {"sub": "\ud800"}),
    "access-sid-surrogate": ("access", {"sid": "s\ud800"}),
    "refresh-jti-surrogate": ("refresh", {"jti": "\udfff"}),
}


@pytest.mark.parametrize(("kind", "changed"), WRONG_CLAIMS.values(), ids=WRONG_CLAIMS.keys())
async def test_a_signed_token_with_a_claim_of_the_wrong_type_or_sense_is_401(
    client: httpx.AsyncClient,
    live_api: LiveServer,
    unique_email: Callable[[], str],
    kind: str,
    changed: dict[str, object],
) -> None:
    """Only the signing key makes such a token; the API still answers it as a bad one."""
    tokens = await login(client, await account(client, unique_email))
    token = resigned(live_api, tokens[f"{kind}_token"], kind, changed)
    if kind == "access":
        answer = await client.get("/v1/users/me", headers=bearer(token))
    else:
        answer = await client.post("/v1/auth/refresh", json={"refresh_token": token})
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "unauthorized"


async def test_five_failures_lock_the_account_even_for_the_right_password(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    for _ in range(5):
        wrong = await client.post(
            "/v1/auth/login", json={"email": email, "password": "Wrong-pass-1"}
        )
        assert wrong.status_code == 401
        assert "x-jwt-token" not in wrong.headers
    locked = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= 900
    assert "try again in 15 minutes" in locked.json()["error"]["message"]
    assert "x-jwt-token" not in locked.headers


async def test_password_change_ends_other_sessions_and_keeps_this_one(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    here = await login(client, email)
    elsewhere = await login(client, email)
    wrong = await password_change(client, here["access_token"], current="nope-Nope1")
    assert wrong.status_code == 401
    changed = await password_change(client, here["access_token"])
    assert changed.status_code == 204, changed.text
    assert (
        await client.get("/v1/users/me", headers=bearer(here["access_token"]))
    ).status_code == 200
    other = await client.get(
        "/v1/users/me",
        headers={
            **bearer(elsewhere["access_token"]),
            "bloghub-after": changed.headers["bloghub-position"],
        },
    )
    assert other.status_code == 401
    old = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    new = await client.post("/v1/auth/login", json={"email": email, "password": "N3w-password!"})
    assert new.status_code == 200


@pytest.mark.parametrize("sessions", ["two_sessions", "one_session"])
async def test_password_changes_sent_at_once_answer_success_for_the_one_that_holds(
    client: httpx.AsyncClient, unique_email: Callable[[], str], sessions: str
) -> None:
    """Two tabs change the password at once: at most one is told it worked, and the
    password it set is the one that signs in; the other is refused (401, its proof was
    left behind; or 409, retry), never answered 204 with a password that does not work."""
    email = await account(client, unique_email)
    first = await login(client, email)
    second = first if sessions == "one_session" else await login(client, email)

    def change(tokens: dict[str, Any], new: str) -> Awaitable[httpx.Response]:
        body = {"current_password": PASSWORD, "new_password": new, "confirm_password": new}
        return client.post(
            "/v1/users/me/password", json=body, headers=bearer(tokens["access_token"])
        )

    news = ["N3w-password!1", "N3w-password!2"]
    answers = await asyncio.gather(change(first, news[0]), change(second, news[1]))
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 204, [a.text for a in answers]
    assert statuses[1] in (401, 409), [a.text for a in answers]
    (kept,) = [new for new, a in zip(news, answers, strict=True) if a.status_code == 204]
    (winner,) = [t for t, a in zip((first, second), answers, strict=True) if a.status_code == 204]
    position = {
        "bloghub-after": next(a for a in answers if a.is_success).headers["bloghub-position"]
    }
    me = await client.get("/v1/users/me", headers={**bearer(winner["access_token"]), **position})
    assert me.status_code == 200, me.text
    for new in news:
        body = {"email": email, "password": new}
        signed_in = await once_caught_up(partial(client.post, "/v1/auth/login", json=body))
        assert signed_in.status_code == (200 if new == kept else 401), signed_in.text


async def test_no_login_racing_a_password_change_keeps_a_session(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """Logins with the old password sent while the password changes (its hash is checked
    slowly, so some check it just before): whatever each answers, once the change has
    answered no session they opened is live, and the change's own session is. Each one
    refused is a failed try for the lockout and the security log (one refused because the
    password changed while it was checked was counted a success: its count cleared, its
    address made known)."""
    survivors, refused = [], 0
    with capture_logs() as lines:
        for _ in range(5):
            email = await account(client, unique_email)
            here = await login(client, email)
            change = password_change(client, here["access_token"])

            async def old_login(delay_s: float, email: str = email) -> httpx.Response:
                await asyncio.sleep(delay_s)
                body = {"email": email, "password": PASSWORD}
                return await client.post("/v1/auth/login", json=body)

            changed, *logins = await asyncio.gather(
                change, *(old_login(d) for d in (0.05, 0.25, 0.4, 0.55))
            )
            assert changed.status_code == 204, changed.text
            for answer in logins:
                assert answer.status_code in (200, 401, 503), answer.text
                refused += answer.status_code == 401
                if answer.status_code == 200:
                    me = await client.get(
                        "/v1/users/me", headers=bearer(answer.json()["access_token"])
                    )
                    survivors += [me.status_code] if me.status_code != 401 else []
            kept = await client.get("/v1/users/me", headers=bearer(here["access_token"]))
            assert kept.status_code == 200
    assert survivors == []
    assert sum(line["event"] == "login.failed" for line in lines) == refused


async def test_token_answers_are_never_stored(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    answer = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    rotated = await client.post(
        "/v1/auth/refresh", json={"refresh_token": answer.json()["refresh_token"]}
    )
    for issued in (answer, rotated):
        assert issued.status_code == 200, issued.text
        assert issued.headers["cache-control"] == "no-store"


async def test_what_one_person_is_shown_is_not_stored_and_no_answer_is_sniffed(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """The caller's email and notifications stay out of a browser's cache; every answer,
    anonymous ones and the fast path's included, is taken for the type it says it is."""
    tokens = await login(client, await account(client, unique_email))
    auth = bearer(tokens["access_token"])
    for path in ("/v1/users/me", "/v1/notifications", "/api/user", "/v1/users/nobody"):
        answer = await client.get(path, headers=auth)
        assert answer.headers["cache-control"] == "no-store", path
        assert answer.headers["x-content-type-options"] == "nosniff", path
    user_id = tokens["user"]["id"]
    for path in (f"/v1/users/{user_id}", f"/v1/users/{user_id}", "/v1/ranking/hot", "/v1/tags"):
        anonymous = await client.get(path)
        assert anonymous.status_code == 200, anonymous.text
        assert anonymous.headers["x-content-type-options"] == "nosniff", path
        assert "cache-control" not in anonymous.headers, path


async def test_a_password_typed_decomposed_signs_in_as_typed_composed(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """An account made on one device logs in from another whose keyboard sends "ü" as "u"
    and a combining mark (NFD), and the other way round."""
    password = unicodedata.normalize("NFC", "Pässw0rd!ü")
    forms: tuple[tuple[Literal["NFC", "NFD"], Literal["NFC", "NFD"]], ...] = (
        ("NFC", "NFD"),
        ("NFD", "NFC"),
    )
    for made, typed in forms:
        email = unique_email()
        body = signup_body(email, unicodedata.normalize(made, password))
        assert (await client.post("/v1/users", json=body)).status_code == 201
        login_body = {"email": email, "password": unicodedata.normalize(typed, password)}

        def log_in(b: dict[str, str] = login_body) -> Awaitable[httpx.Response]:
            return client.post("/v1/auth/login", json=b)

        answer = await once_caught_up(log_in)
        assert answer.status_code == 200, answer.text
