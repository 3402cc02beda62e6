"""Threaded comments end to end: replies get their root and parent, threads list their
newest replies and counts, deleting removes the subtree and fixes the counts, bad input
stores nothing, and only the comment's or the article's author may delete."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.test_articles import Author, draft
from tests.e2e.test_sessions import bearer
from tests.e2e.test_social import person, publish
from tests.support import wait_until

pytestmark = pytest.mark.usefixtures("live_api")


@pytest.fixture
async def writer(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    return await person(client, unique_email)


@pytest.fixture
async def commenter(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    return await person(client, unique_email)


async def comment(
    client: httpx.AsyncClient,
    who: Author,
    article_id: str,
    text: str,
    parent: str | None = None,
    *,
    after: str,
) -> dict[str, Any]:
    """Post as ``who``, having seen the write at ``after`` (the article, or the parent)."""
    body: dict[str, Any] = {"content": text, **({"parent_id": parent} if parent else {})}
    headers = {**who.auth, "bloghub-after": after}
    answer = await client.post(f"/v1/articles/{article_id}/comments", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    out: dict[str, Any] = answer.json()["comment"]
    out["position"] = answer.headers["bloghub-position"]
    return out


async def threads(client: httpx.AsyncClient, article_id: str, after: str) -> dict[str, Any]:
    answer = await client.get(
        f"/v1/articles/{article_id}/comments", headers={"bloghub-after": after}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def comment_count(client: httpx.AsyncClient, article_id: str, after: str) -> int:
    detail = await client.get(f"/v1/articles/{article_id}", headers={"bloghub-after": after})
    assert detail.status_code == 200, detail.text
    count: int = detail.json()["article"]["comment_cnt"]
    listed = await client.get(
        "/v1/articles",
        params={"author": detail.json()["article"]["author"]["id"]},
        headers={"bloghub-after": after},
    )
    assert [a["comment_cnt"] for a in listed.json()["articles"]] == [count]
    return count


async def test_a_reply_to_a_reply_gets_its_root_and_parent_and_is_listed_under_it(
    client: httpx.AsyncClient, writer: Author, commenter: Author
) -> None:
    article_id, seen = await publish(client, writer)
    assert await comment_count(client, article_id, seen) == 0
    # Anonymous readers now have the detail in the caches.
    detail = (await client.get(f"/v1/articles/{article_id}")).json()
    assert detail["article"]["comment_cnt"] == 0
    top = await comment(client, commenter, article_id, "First!\n\t<b>not bold</b>", after=seen)
    assert top["root_id"] is None
    assert top["parent_id"] is None
    reply = await comment(client, writer, article_id, "Thanks", top["id"], after=top["position"])
    assert (reply["root_id"], reply["parent_id"]) == (top["id"], top["id"])
    deeper = await comment(
        client, commenter, article_id, "You're welcome", reply["id"], after=reply["position"]
    )
    assert (deeper["root_id"], deeper["parent_id"]) == (top["id"], reply["id"])

    listed = await threads(client, article_id, deeper["position"])
    (thread,) = listed["comments"]
    assert thread["id"] == top["id"]
    assert thread["content"] == "First!\n\t<b>not bold</b>", "text as sent, never HTML"
    # The time the post answered is the one every read shows.
    assert thread["created_at"] == top["created_at"]
    assert thread["replies"][0]["created_at"] == reply["created_at"]
    assert thread["reply_count"] == 2
    assert [r["id"] for r in thread["replies"]] == [reply["id"], deeper["id"]]
    assert thread["replies"][1]["parent_id"] == reply["id"]
    assert await comment_count(client, article_id, deeper["position"]) == 3

    async def anonymous_readers_see_three() -> bool:
        detail = (await client.get(f"/v1/articles/{article_id}")).json()
        return bool(detail["article"]["comment_cnt"] == 3)

    # The comments projector drops the cached counts, and the hot tier the body built on them.
    await wait_until(anonymous_readers_see_three, timeout_s=10)


async def test_threads_show_three_newest_replies_and_the_rest_pages_oldest_first(
    client: httpx.AsyncClient, writer: Author, commenter: Author
) -> None:
    article_id, seen = await publish(client, writer)
    older = await comment(client, commenter, article_id, "older thread", after=seen)
    top = await comment(client, commenter, article_id, "newer thread", after=seen)
    replies = [
        await comment(client, writer, article_id, f"r{i}", top["id"], after=top["position"])
        for i in range(5)
    ]
    position = replies[-1]["position"]

    first = await client.get(
        f"/v1/articles/{article_id}/comments",
        params={"limit": "1"},
        headers={"bloghub-after": position},
    )
    page = first.json()
    assert [c["id"] for c in page["comments"]] == [top["id"]], "newest thread first"
    assert page["comments"][0]["reply_count"] == 5
    assert [r["content"] for r in page["comments"][0]["replies"]] == ["r2", "r3", "r4"]
    second = await client.get(
        f"/v1/articles/{article_id}/comments",
        params={"limit": "1", "before": page["next_before"]},
    )
    assert [c["id"] for c in second.json()["comments"]] == [older["id"]]
    assert second.json()["next_before"] is None

    rest: list[str] = []
    after: str | None = None
    while True:
        params = {"limit": "2", **({"after": after} if after else {})}
        got = (await client.get(f"/v1/comments/{top['id']}/replies", params=params)).json()
        rest += [r["content"] for r in got["replies"]]
        after = got["next_after"]
        if after is None:
            break
    assert rest == ["r0", "r1", "r2", "r3", "r4"]


async def test_deleting_removes_the_subtree_and_fixes_the_counts(
    client: httpx.AsyncClient, writer: Author, commenter: Author
) -> None:
    article_id, seen = await publish(client, writer)
    top = await comment(client, commenter, article_id, "top", after=seen)
    mid = await comment(client, commenter, article_id, "mid", top["id"], after=seen)
    await comment(client, writer, article_id, "under mid", mid["id"], after=mid["position"])
    kept = await comment(client, writer, article_id, "kept", top["id"], after=mid["position"])
    assert await comment_count(client, article_id, kept["position"]) == 4

    gone = await client.delete(f"/v1/comments/{mid['id']}", headers=commenter.auth)
    assert gone.status_code == 204
    after = gone.headers["bloghub-position"]
    (thread,) = (await threads(client, article_id, after))["comments"]
    assert thread["reply_count"] == 1
    assert [r["id"] for r in thread["replies"]] == [kept["id"]]
    assert await comment_count(client, article_id, after) == 2
    again = await client.delete(f"/v1/comments/{mid['id']}", headers=commenter.auth)
    assert again.status_code == 404

    whole = await client.delete(f"/v1/comments/{top['id']}", headers=commenter.auth)
    after = whole.headers["bloghub-position"]
    assert (await threads(client, article_id, after))["comments"] == []
    assert await comment_count(client, article_id, after) == 0
    rest = await client.get(f"/v1/comments/{top['id']}/replies", headers={"bloghub-after": after})
    assert rest.status_code == 404


async def test_the_author_sees_the_comment_count_of_their_own_articles(
    client: httpx.AsyncClient, writer: Author, commenter: Author
) -> None:
    article_id, seen = await publish(client, writer)
    top = await comment(client, commenter, article_id, "top", after=seen)
    last = await comment(client, commenter, article_id, "reply", top["id"], after=seen)

    async def own_count(after: str) -> tuple[int, int]:
        headers = {**writer.auth, "bloghub-after": after}
        listed = await client.get("/v1/me/articles", headers=headers)
        assert listed.status_code == 200, listed.text
        (item,) = listed.json()["articles"]
        one = await client.get(f"/v1/me/articles/{article_id}", headers=headers)
        assert one.status_code == 200, one.text
        return item["comment_cnt"], one.json()["article"]["comment_cnt"]

    assert await own_count(last["position"]) == (2, 2)
    # Kept while the article is withdrawn, as its other counts are.
    withdrawn = await client.post(f"/v1/articles/{article_id}/withdraw", headers=writer.auth)
    assert withdrawn.status_code == 200, withdrawn.text
    assert await own_count(withdrawn.headers["bloghub-position"]) == (2, 2)


async def test_bad_comments_are_refused_and_store_nothing(
    client: httpx.AsyncClient, writer: Author, commenter: Author
) -> None:
    article_id, seen = await publish(client, writer)
    other_article, other_seen = await publish(client, writer, "Other")
    elsewhere = await comment(client, commenter, other_article, "elsewhere", after=other_seen)
    deleted = await comment(client, commenter, article_id, "soon gone", after=seen)
    done = await client.delete(f"/v1/comments/{deleted['id']}", headers=commenter.auth)
    assert done.status_code == 204
    unpublished = await draft(client, writer)
    unknown = "01890000-0000-7000-8000-000000000000"
    url = f"/v1/articles/{article_id}/comments"
    refused: list[tuple[str, dict[str, Any], int]] = [
        (url, {"content": ""}, 422),
        (url, {"content": "x" * 10_001}, 422),
        (url, {"content": "bell \x07"}, 422),
        (url, {"content": "carriage\rreturn"}, 422),
        # Nothing visible: it would show as an empty comment (and notify the author of one).
        (url, {"content": "   "}, 422),
        (url, {"content": "\n\n"}, 422),
        (url, {"content": "\u200b"}, 422),
        (url, {"content": "\u3000\t"}, 422),
        # Characters that show nothing alone: a blank braille cell, a Hangul filler, a
        # joiner, a variation selector.
        (url, {"content": "\u2800\n\u3164"}, 422),
        (url, {"content": "\u200d\ufe0f"}, 422),
        # ...and past the BMP: tag characters, a shorthand format control.
        (url, {"content": "\U000e0020" * 3}, 422),
        (url, {"content": "\U0001bca0"}, 422),
        (url, {"content": "nul \x00"}, 422),
        (url, {"content": 5}, 422),
        (url, {"content": "hi", "parent_id": "nope"}, 422),
        (url, {"content": "hi", "parent_id": unknown}, 422),
        (url, {"content": "hi", "parent_id": elsewhere["id"]}, 422),
        (url, {"content": "hi", "parent_id": deleted["id"]}, 422),
        (url, {"content": "hi", "extra": 1}, 422),
        (f"/v1/articles/{unknown}/comments", {"content": "hi"}, 404),
        (f"/v1/articles/{unpublished}/comments", {"content": "hi"}, 404),
        ("/v1/articles/not-an-id/comments", {"content": "hi"}, 404),
    ]
    for path, body, status in refused:
        answer = await client.post(
            path, json=body, headers={**commenter.auth, "bloghub-after": seen}
        )
        assert answer.status_code == status, (body, answer.text)
        assert set(answer.json()["error"]) >= {"code", "message"}
        assert "bloghub-position" not in answer.headers
    ok = await comment(client, commenter, article_id, "x" * 10_000, after=seen)
    # A reply to it naming it in a spelling no path takes (as a path, it names nothing).
    for spelt in (f"urn:uuid:{ok['id']}", "{" + ok["id"] + "}"):
        answer = await client.post(
            url,
            json={"content": "hi", "parent_id": spelt},
            headers={**commenter.auth, "bloghub-after": ok["position"]},
        )
        assert answer.status_code == 422, answer.text
        assert "32 hex digits" in answer.json()["error"]["fields"]["parent_id"]
    # Tag characters inside text are text: a flag of a region is spelled with them.
    england = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
    flag = await comment(client, commenter, article_id, england, after=ok["position"])
    listed = await threads(client, article_id, flag["position"])
    stored = {c["id"]: c["content"] for c in listed["comments"]}
    assert stored == {ok["id"]: "x" * 10_000, flag["id"]: england}, "nothing else was stored"
    for path in (
        f"/v1/articles/{unpublished}/comments",
        f"/v1/comments/{unknown}/replies",
        "/v1/comments/not-an-id/replies",
    ):
        assert (await client.get(path)).status_code == 404
    assert (await client.get(url, params={"before": "%%"})).status_code == 422
    assert (await client.get(url, params={"limit": "101"})).status_code == 422
    # Cursors of the right form this API never handed out name no page, as in every list.
    for name, path in (("before", url), ("after", f"/v1/comments/{ok['id']}/replies")):
        strange = base64.urlsafe_b64encode(b'["not-an-id"]').decode().rstrip("=")
        answer = await client.get(path, params={name: strange})
        assert answer.status_code == 404, (name, answer.text)


async def test_who_may_do_what_on_every_comment_route(
    client: httpx.AsyncClient, writer: Author, commenter: Author, unique_email: Callable[[], str]
) -> None:
    stranger = await person(client, unique_email)
    article_id, seen = await publish(client, writer)
    url = f"/v1/articles/{article_id}/comments"
    for headers in ({}, bearer("not-a-token")):
        posted = await client.post(url, json={"content": "hi"}, headers=headers)
        assert posted.status_code == 401
    top = await comment(client, commenter, article_id, "top", after=seen)
    by_stranger = await comment(client, stranger, article_id, "stranger's", after=seen)
    for path in (url, f"/v1/comments/{top['id']}/replies"):
        assert (await client.get(path)).status_code == 200, "anyone may read"
        assert (await client.get(path, headers=stranger.auth)).status_code == 200
        assert (await client.get(path, headers=bearer("not-a-token"))).status_code == 401

    delete = f"/v1/comments/{top['id']}"
    assert (await client.delete(delete)).status_code == 401
    assert (await client.delete(delete, headers=bearer("not-a-token"))).status_code == 401
    refused = await client.delete(
        delete, headers={**stranger.auth, "bloghub-after": top["position"]}
    )
    assert refused.status_code == 403, "someone else's comment"
    assert refused.json()["error"]["code"] == "forbidden"
    own = await client.delete(f"/v1/comments/{by_stranger['id']}", headers=stranger.auth)
    assert own.status_code == 204, "its author"
    by_article_author = await client.delete(delete, headers=writer.auth)
    assert by_article_author.status_code == 204, "the article's author"
    after = by_article_author.headers["bloghub-position"]
    assert (await threads(client, article_id, after))["comments"] == []


async def test_a_retried_comment_with_the_same_idempotency_key_is_posted_once(
    client: httpx.AsyncClient, writer: Author, commenter: Author
) -> None:
    article_id, seen = await publish(client, writer)
    headers = {**commenter.auth, "bloghub-after": seen, "idempotency-key": "comment-1"}
    url = f"/v1/articles/{article_id}/comments"
    first = await client.post(url, json={"content": "once"}, headers=headers)
    again = await client.post(url, json={"content": "once"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["comment"]["id"] == first.json()["comment"]["id"]
    # A write after both: had the retry appended, it would be applied by then.
    later = await comment(client, commenter, article_id, "later", after=seen)
    listed = (await threads(client, article_id, later["position"]))["comments"]
    assert [c["content"] for c in listed] == ["later", "once"]
    assert await comment_count(client, article_id, later["position"]) == 2


async def test_a_comment_under_a_hidden_article_is_not_found_by_anyone_else(
    client: httpx.AsyncClient, writer: Author, commenter: Author, unique_email: Callable[[], str]
) -> None:
    """Its writer and the article's author may still delete it; to anyone else the
    article is not there, so its comment is 404, as its replies are (a 403 said it was)."""
    stranger = await person(client, unique_email)
    article_id, seen = await publish(client, writer)
    top = await comment(client, commenter, article_id, "top", after=seen)
    other = await comment(client, commenter, article_id, "other", after=seen)
    withdrawn = await client.post(f"/v1/articles/{article_id}/withdraw", headers=writer.auth)
    assert withdrawn.status_code == 200, withdrawn.text
    hidden = {"bloghub-after": withdrawn.headers["bloghub-position"]}
    refused = await client.delete(f"/v1/comments/{top['id']}", headers={**stranger.auth, **hidden})
    assert refused.status_code == 404, refused.text
    assert refused.json()["error"]["code"] == "not_found"
    replies = await client.get(f"/v1/comments/{top['id']}/replies", headers=stranger.auth)
    assert replies.status_code == 404, replies.text
    for who, gone in ((commenter, top), (writer, other)):
        done = await client.delete(f"/v1/comments/{gone['id']}", headers={**who.auth, **hidden})
        assert done.status_code == 204, done.text
