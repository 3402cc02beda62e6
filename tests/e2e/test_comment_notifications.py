"""Notifications about a comment last as long as the comment: once it is deleted, its
article's author and the authors it replied to no longer find them listed or counted,
nor those about the replies deleted with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.test_articles import Author
from tests.e2e.test_comments import comment
from tests.e2e.test_social import person, publish

pytestmark = pytest.mark.usefixtures("live_api")


async def notified(client: httpx.AsyncClient, who: Author, after: str) -> dict[str, Any]:
    """``who``'s notifications, as of the write at ``after``."""
    headers = {**who.auth, "bloghub-after": after}
    answer = await client.get("/v1/notifications", headers=headers)
    assert answer.status_code == 200, answer.text
    assert "bloghub-stale" not in answer.headers
    body: dict[str, Any] = answer.json()
    return body


def told(page: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(n["kind"], n["actor_id"], n["comment_id"]) for n in page["notifications"]]


async def test_a_deleted_comment_is_no_longer_notified_nor_its_replies(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    author, rude, replier, kind = [await person(client, unique_email) for _ in range(4)]
    article_id, published = await publish(client, author)
    top = await comment(client, rude, article_id, "rude words", after=published)
    reply = await comment(client, replier, article_id, "agreed", top["id"], after=top["position"])
    other = await comment(client, kind, article_id, "nice", after=reply["position"])
    before = await notified(client, author, other["position"])
    assert sorted(told(before)) == sorted(
        [
            ("comment", rude.id, top["id"]),
            ("comment", replier.id, reply["id"]),
            ("comment", kind.id, other["id"]),
        ]
    )
    assert before["unread"] == 3
    assert told(await notified(client, rude, other["position"])) == [
        ("reply", replier.id, reply["id"])
    ]

    gone = await client.delete(f"/v1/comments/{top['id']}", headers=rude.auth)
    assert gone.status_code == 204, gone.text
    deleted_at = gone.headers["bloghub-position"]

    after = await notified(client, author, deleted_at)
    assert told(after) == [("comment", kind.id, other["id"])]
    assert after["unread"] == 1
    me = await client.get("/v1/users/me", headers={**author.auth, "bloghub-after": deleted_at})
    assert me.json()["user"]["unread_notifications"] == 1
    unread_only = await client.get(
        "/v1/notifications", params={"unread": "true"}, headers=author.auth
    )
    assert told(unread_only.json()) == [("comment", kind.id, other["id"])]
    # The reply's author's notification went with the reply.
    rude_after = await notified(client, rude, deleted_at)
    assert told(rude_after) == []
    assert rude_after["unread"] == 0


async def test_a_deleted_articles_notifications_go_with_it(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    author, reader, replier = [await person(client, unique_email) for _ in range(3)]
    kept_id, kept_published = await publish(client, author)
    older = await comment(client, replier, kept_id, "on the kept one", after=kept_published)
    article_id, published = await publish(client, author)
    top = await comment(client, reader, article_id, "first", after=published)
    reply = await comment(client, replier, article_id, "second", top["id"], after=top["position"])
    liked = await client.put(f"/v1/articles/{article_id}/like", headers=reader.auth)
    assert liked.status_code == 200, liked.text
    before = await notified(client, author, liked.headers["bloghub-position"])
    about = {n["article_id"] for n in before["notifications"][:-1]}
    assert about == {article_id}  # newest first: all but the oldest are about it
    assert {n["kind"] for n in before["notifications"]} == {"comment", "like_milestone"}
    newest = before["notifications"][0]["id"]
    assert told(await notified(client, reader, reply["position"])) == [
        ("reply", replier.id, reply["id"])
    ]

    gone = await client.delete(f"/v1/articles/{article_id}", headers=author.auth)
    assert gone.status_code == 204, gone.text
    deleted_at = gone.headers["bloghub-position"]
    after = await notified(client, author, deleted_at)
    assert told(after) == [("comment", replier.id, older["id"])]
    assert after["unread"] == 1
    me = await client.get("/v1/users/me", headers={**author.auth, "bloghub-after": deleted_at})
    assert me.json()["user"]["unread_notifications"] == 1
    assert told(await notified(client, reader, deleted_at)) == []

    # "Mark all read" from the page loaded before the delete: up to its newest, removed
    # since, still marks the older one.
    marked = await client.post(
        "/v1/notifications/read",
        json={"up_to": newest},
        headers={**author.auth, "bloghub-after": deleted_at},
    )
    assert marked.status_code == 204, marked.text
    assert (await notified(client, author, marked.headers["bloghub-position"]))["unread"] == 0
