"""Signup → login → me through Kafka and the users projector, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import httpx

from bloghub.events.codec import UndecodableEvent, decode
from bloghub.events.topics import Family, topic_for
from bloghub.settings import Settings
from tests.conftest import read_topic

PASSWORD = "s3cret-Pass!"


def registrations(records: list[Any]) -> set[str]:
    """The accounts that ``records`` of the users topic register by email (other tests put
    records there that are no events at all)."""
    found = set()
    for record in records:
        with contextlib.suppress(UndecodableEvent):
            envelope = decode(record.value)
            if envelope.type == "user.registered":
                found.add(envelope.aggregate_id)
    return found


def signup_body(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"email": email, "password": password, "confirm_password": password}


async def test_signup_login_me_at_once(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    created = await client.post("/v1/users", json=signup_body(email))
    assert created.status_code == 201, created.text
    assert created.json()["user"]["email"] == email
    assert created.headers["bloghub-position"]

    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert login.headers["x-jwt-token"] == tokens["access_token"]
    assert login.headers["x-refresh-token"] == tokens["refresh_token"]

    me = await client.get(
        "/v1/users/me", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200, me.text
    assert me.json()["user"] == {
        "id": created.json()["user"]["id"],
        "email": email,
        "phone": None,
        "nickname": None,
        "birthday": None,
        "about_me": None,
        "wechat_bound": False,
        "created_at": me.json()["user"]["created_at"],
        "unread_notifications": 0,
    }
    assert "bloghub-stale" not in me.headers


async def test_email_is_normalised_and_login_ignores_case(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    created = await client.post("/v1/users", json=signup_body("  " + email.upper() + " "))
    assert created.status_code == 201, created.text
    assert created.json()["user"]["email"] == email
    login = await client.post("/v1/auth/login", json={"email": email.upper(), "password": PASSWORD})
    assert login.status_code == 200, login.text


async def test_wrong_password_and_unknown_email_look_the_same(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    assert (await client.post("/v1/users", json=signup_body(email))).status_code == 201
    wrong = await client.post("/v1/auth/login", json={"email": email, "password": "Wrong-pass1"})
    unknown = await client.post(
        "/v1/auth/login", json={"email": unique_email(), "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert "x-jwt-token" not in wrong.headers


async def test_me_needs_a_valid_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/users/me")).status_code == 401
    bad = await client.get("/v1/users/me", headers={"authorization": "Bearer nonsense"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "unauthorized"


async def test_token_from_another_user_agent_is_refused(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    assert (await client.post("/v1/users", json=signup_body(email))).status_code == 201
    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    token = login.json()["access_token"]
    other = await client.get(
        "/v1/users/me", headers={"authorization": f"Bearer {token}", "user-agent": "curl/8"}
    )
    assert other.status_code == 401


async def test_fifty_concurrent_signups_with_one_email(
    client: httpx.AsyncClient, settings: Settings, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    users_topic = topic_for(settings.prefix, Family.USERS)
    before = registrations(await read_topic(settings, users_topic))
    answers = await asyncio.gather(
        *(client.post("/v1/users", json=signup_body(email)) for _ in range(50))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 49
    conflict = next(a for a in answers if a.status_code == 409)
    assert conflict.json()["error"]["fields"] == {"email": "already taken"}
    # The email is sealed in the log: count the registrations recorded meanwhile.
    mine = registrations(await read_topic(settings, users_topic)) - before
    assert len(mine) == 1, "exactly one event was recorded"
