"""Profiles: the owner edits, everyone reads the public part (through the cache the users
projector keeps fresh)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bloghub.api.v1.schemas import latest_today
from tests.e2e.test_sessions import account, bearer, login


@pytest.fixture
async def auth(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> dict[str, str]:
    tokens = await login(client, await account(client, unique_email))
    return bearer(tokens["access_token"])


async def test_patch_then_read_own_and_public_profile(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    me = (await client.get("/v1/users/me", headers=auth)).json()["user"]
    public_before = await client.get(f"/v1/users/{me['id']}")
    assert public_before.status_code == 200
    assert public_before.json()["user"]["nickname"] is None

    patch = {"nickname": "小明 Ming", "birthday": "1990-05-17", "about_me": "写代码的人"}
    changed = await client.patch("/v1/users/me", json=patch, headers=auth)
    assert changed.status_code == 200, changed.text
    assert changed.json()["user"]["nickname"] == "小明 Ming"

    mine = (await client.get("/v1/users/me", headers=auth)).json()["user"]
    assert {k: mine[k] for k in patch} == patch

    public = await client.get(
        f"/v1/users/{me['id']}", headers={"bloghub-after": changed.headers["bloghub-position"]}
    )
    body = public.json()["user"]
    assert body["nickname"] == "小明 Ming"
    assert body["about_me"] == "写代码的人"
    assert "email" not in body
    assert "birthday" not in body

    cleared = await client.patch("/v1/users/me", json={"nickname": None}, headers=auth)
    assert cleared.status_code == 200
    mine = (await client.get("/v1/users/me", headers=auth)).json()["user"]
    assert mine["nickname"] is None
    assert mine["about_me"] == "写代码的人"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"nickname": "x" * 65}, "nickname"),
        ({"nickname": ""}, "nickname"),
        ({"birthday": (latest_today() + timedelta(days=1)).isoformat()}, "birthday"),
        ({"birthday": "1990-13-01"}, "birthday"),
        ({"birthday": "17/05/1990"}, "birthday"),
        ({"about_me": "y" * 1025}, "about_me"),
        ({"about_me": "bad\u0000byte"}, "about_me"),
        ({"nickname": 5}, "nickname"),
        ({"nickname": "\u3164\u3164"}, "nickname"),  # Hangul fillers: nothing shows
        ({"nickname": "\u115f\u034f"}, "nickname"),
        ({"nickname": "\U000f0000"}, "nickname"),  # supplementary private use
        ({"email": "a@b.c"}, "email"),
        ({}, "body"),
    ],
)
async def test_profile_fields_are_checked(
    client: httpx.AsyncClient, auth: dict[str, str], patch: dict[str, object], field: str
) -> None:
    answer = await client.patch("/v1/users/me", json=patch, headers=auth)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]["fields"]


async def test_a_birthday_of_today_is_taken_wherever_the_day_has_begun(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Someone far east of the server enters their own today: not the future to them."""
    today_there = latest_today()
    assert today_there >= datetime.now(UTC).date()
    answer = await client.patch(
        "/v1/users/me", json={"birthday": today_there.isoformat()}, headers=auth
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"]["birthday"] == today_there.isoformat()


async def test_emoji_sequences_are_visible_text(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Joiners and variation selectors do not make a text visible, and are kept where an
    emoji is made of them."""
    for nickname in ("I \u2764\ufe0f tea", "\U0001f468\u200d\U0001f469\u200d\U0001f467"):
        answer = await client.patch("/v1/users/me", json={"nickname": nickname}, headers=auth)
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"]["nickname"] == nickname


async def test_a_nicknames_length_is_said_in_characters(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    long = await client.patch("/v1/users/me", json={"nickname": "x" * 65}, headers=auth)
    assert long.json()["error"]["fields"]["nickname"] == "String should have at most 64 characters"
    empty = await client.patch("/v1/users/me", json={"nickname": ""}, headers=auth)
    assert empty.json()["error"]["fields"]["nickname"] == "String should have at least 1 character"


async def test_unknown_or_malformed_user_ids_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/users/not-a-uuid")).status_code == 404
    missing = await client.get("/v1/users/01a21c55-c7a4-73d1-a44c-16eb1e146e7d")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_profile_needs_a_session(client: httpx.AsyncClient) -> None:
    answer = await client.patch("/v1/users/me", json={"nickname": "x"})
    assert answer.status_code == 401
