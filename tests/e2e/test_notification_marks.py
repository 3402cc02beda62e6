"""Marking notifications read marks only the caller's own: another user's notification
stays unread, and ids that name none of the caller's are not kept at all (marks wait in
the read model for notifications that may come later, so kept junk would grow it without
bound)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bloghub.settings import Settings
from tests.conftest import pg
from tests.e2e.test_social import person
from tests.support import wait_until

pytestmark = pytest.mark.usefixtures("live_api")


async def test_only_the_callers_own_notifications_are_marked_and_kept(
    client: httpx.AsyncClient, settings: Settings, unique_email: Callable[[], str]
) -> None:
    alice, bob = await person(client, unique_email), await person(client, unique_email)
    assert (await client.put(f"/v1/users/{alice.id}/follow", headers=bob.auth)).status_code == 200
    found: list[dict[str, Any]] = []

    async def notified() -> bool:
        page = await client.get("/v1/notifications", headers=alice.auth)
        found[:] = page.json()["notifications"]
        return bool(found)

    await wait_until(notified, timeout_s=30)
    mine = found[0]["id"]
    strangers = [str(uuid.uuid4()) for _ in range(3)]

    theirs = await client.post(
        "/v1/notifications/read", json={"ids": [mine, *strangers]}, headers=bob.auth
    )
    assert theirs.status_code == 204
    unread = await client.get("/v1/notifications?unread=true", headers=alice.auth)
    assert unread.json()["unread"] == 1, "bob cannot mark alice's notification"

    marked = await client.post(
        "/v1/notifications/read", json={"ids": [*strangers, mine]}, headers=alice.auth
    )
    assert marked.status_code == 204
    after = await client.get("/v1/notifications", headers=alice.auth)
    assert after.json()["unread"] == 0
    async with pg(settings) as conn:
        kept = await conn.fetchval(
            "SELECT count(*) FROM notifications_g1.notification_marks "
            "WHERE notification_id = ANY($1::uuid[])",
            strangers,
        )
    assert kept == 0


@pytest.mark.parametrize(
    "body",
    [
        {"ids": [str(uuid.uuid4())], "up_to": None},
        {"ids": None, "up_to": str(uuid.uuid4())},
        {"ids": None, "up_to": None},
    ],
)
async def test_a_mark_sending_null_is_refused_as_the_document_says(
    client: httpx.AsyncClient, unique_email: Callable[[], str], body: dict[str, Any]
) -> None:
    """The document types ``ids`` and ``up_to`` without null and asks for exactly one:
    null sent for either is 422, not taken for a field left out."""
    alice = await person(client, unique_email)
    answer = await client.post("/v1/notifications/read", json=body, headers=alice.auth)
    assert answer.status_code == 422, answer.text


async def test_a_profile_change_answers_the_unread_count_the_profile_shows(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    # A client keeps "me" from the write's answer: the badge must not go blank.
    alice, bob = await person(client, unique_email), await person(client, unique_email)
    assert (await client.put(f"/v1/users/{alice.id}/follow", headers=bob.auth)).status_code == 200

    async def told() -> bool:
        me = await client.get("/v1/users/me", headers=alice.auth)
        return bool(me.json()["user"]["unread_notifications"] == 1)

    await wait_until(told, timeout_s=30)
    changed = await client.patch("/v1/users/me", json={"about_me": "hi"}, headers=alice.auth)
    assert changed.status_code == 200, changed.text
    assert changed.json()["user"]["about_me"] == "hi"
    assert changed.json()["user"]["unread_notifications"] == 1


async def test_a_page_and_its_unread_count_agree_while_notifications_arrive(
    client: httpx.AsyncClient, settings: Settings, unique_email: Callable[[], str]
) -> None:
    """The page and the unread count were read apart: a notification the projector added
    between the two was counted and not listed (a badge of 23 over a list of 21). Rows are
    added here straight into the read model, as fast as the projector could."""
    alice = await person(client, unique_email)
    reading = True

    async def arrive() -> None:
        # Fewer than a page (100) in all, so every page read holds all the unread ones.
        async with pg(settings) as conn:
            for _ in range(95):
                if not reading:
                    return
                await conn.execute(
                    "INSERT INTO notifications_g1.notifications "
                    "(id, user_id, kind, actor_id, event_id, created_at) "
                    "VALUES ($1, $2, 'follower', $3, $4, now())",
                    str(uuid.uuid4()),
                    alice.id,
                    str(uuid.uuid4()),
                    str(uuid.uuid4()),
                )
                await asyncio.sleep(0.01)

    adding = asyncio.create_task(arrive())
    disagree: list[tuple[int, int]] = []
    try:
        for _ in range(30):
            page = await client.get(
                "/v1/notifications", params={"unread": "true", "limit": 100}, headers=alice.auth
            )
            body = page.json()
            assert body["next_cursor"] is None, body
            if len(body["notifications"]) != body["unread"]:
                disagree.append((len(body["notifications"]), body["unread"]))
    finally:
        reading = False
        await adding
    assert disagree == []
