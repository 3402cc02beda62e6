"""RealWorld comments at /api: the threaded comments shown flat, newest first; posting,
deleting, and their error cases."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conduit_client import TIMESTAMP, errors, register, unique_name, write, write_at
from tests.support import wait_until

pytestmark = pytest.mark.usefixtures("live_api")


async def say(client: httpx.AsyncClient, slug: str, auth: dict[str, str], text: str) -> int:
    number, _ = await say_at(client, slug, auth, text)
    return number


async def say_at(
    client: httpx.AsyncClient, slug: str, auth: dict[str, str], text: str
) -> tuple[int, dict[str, str]]:
    """A new comment's id, and the header with which another reader waits for it."""
    answer = await client.post(
        f"/api/articles/{slug}/comments", json={"comment": {"body": text}}, headers=auth
    )
    assert answer.status_code == 201, answer.text
    comment = answer.json()["comment"]
    assert set(comment) == {"id", "createdAt", "updatedAt", "body", "author"}
    assert TIMESTAMP.match(comment["createdAt"])
    assert comment["body"] == text
    assert isinstance(comment["id"], int), "RealWorld's ids are integers"
    assert 0 < comment["id"] < 2**53, "exact in JavaScript"
    number: int = comment["id"]
    return number, {"bloghub-after": answer.headers["bloghub-position"]}


async def test_comments_and_replies_are_one_list_newest_first(client: httpx.AsyncClient) -> None:
    jake, ann = await register(client), await register(client)
    made, after = await write_at(client, jake, unique_name("Talk "))
    # Another reader comments once the article is there for them (the writer's position).
    first, after_first = await say_at(client, made["slug"], {**ann.auth, **after}, "First!")
    # A reply through /v1 (RealWorld has no replies): it is in the same flat list. Each
    # reader names the position of the other's comment it reads (a reader waits for its
    # own writes alone).
    article_id = await _article_id(client, jake.token, made["title"])
    threads = await client.get(f"/v1/articles/{article_id}/comments", headers=after_first)
    (thread,) = threads.json()["comments"]
    reply = await client.post(
        f"/v1/articles/{article_id}/comments",
        json={"content": "Thanks", "parent_id": thread["id"]},
        headers={"authorization": f"Bearer {jake.token}"},
    )
    assert reply.status_code == 201, reply.text
    last, after_last = await say_at(client, made["slug"], jake.auth, "Last one")
    listed = await client.get(
        f"/api/articles/{made['slug']}/comments", headers={**ann.auth, **after_last}
    )
    assert listed.status_code == 200, listed.text
    comments = listed.json()["comments"]
    assert [c["body"] for c in comments] == ["Last one", "Thanks", "First!"]
    assert comments[0]["id"] == last
    assert comments[2]["id"] == first
    assert isinstance(comments[1]["id"], int), "a reply through /v1 is numbered too"
    assert comments[0]["author"] == {
        "username": jake.username,
        "bio": None,
        "image": None,
        "following": False,
    }


async def _article_id(client: httpx.AsyncClient, token: str, title: str) -> str:
    """The /v1 id of the author's article ``title``, from their own /v1 listing."""
    mine = await client.get("/v1/me/articles", headers={"authorization": f"Bearer {token}"})
    (found,) = [a["id"] for a in mine.json()["articles"] if a["title"] == title]
    return str(found)


async def test_comments_posted_at_once_show_their_times_in_the_order_listed(
    client: httpx.AsyncClient,
) -> None:
    """Threads list comments in id order; each one's time is its id's, so comments posted
    at once never show an older time above a newer one, and both faces list them alike."""
    jake, *people = [await register(client) for _ in range(5)]
    made, after = await write_at(client, jake, unique_name("Busy "))
    slug = made["slug"]
    for round_ in range(3):
        await asyncio.gather(
            *(
                say(client, slug, {**people[i % 4].auth, **after}, f"c{round_}-{i}")
                for i in range(10)
            )
        )
    article_id = await _article_id(client, jake.token, made["title"])

    async def v1_threads() -> list[dict[str, Any]]:
        listed = await client.get(f"/v1/articles/{article_id}/comments?limit=100")
        assert listed.status_code == 200, listed.text
        threads: list[dict[str, Any]] = listed.json()["comments"]
        return threads

    async def all_listed() -> bool:
        return len(await v1_threads()) == 30

    await wait_until(all_listed, timeout_s=10)
    threads = await v1_threads()
    times = [datetime.fromisoformat(t["created_at"]) for t in threads]
    assert times == sorted(times, reverse=True), "newest first, by the times shown"
    flat = await client.get(f"/api/articles/{slug}/comments")
    assert [c["body"] for c in flat.json()["comments"]] == [t["content"] for t in threads]

    top = threads[0]["id"]
    await asyncio.gather(
        *(
            client.post(
                f"/v1/articles/{article_id}/comments",
                json={"content": f"r{i}", "parent_id": top},
                headers={"authorization": f"Bearer {people[i % 4].token}"},
            )
            for i in range(10)
        )
    )

    async def replies() -> list[dict[str, Any]]:
        page = await client.get(f"/v1/comments/{top}/replies?limit=100")
        assert page.status_code == 200, page.text
        listed: list[dict[str, Any]] = page.json()["replies"]
        return listed

    async def all_replied() -> bool:
        return len(await replies()) == 10

    await wait_until(all_replied, timeout_s=10)
    times = [datetime.fromisoformat(r["created_at"]) for r in await replies()]
    assert times == sorted(times), "oldest first, by the times shown"


async def test_comment_errors_follow_the_spec(client: httpx.AsyncClient) -> None:
    jake, ann = await register(client), await register(client)
    slug = (await write(client, jake, unique_name("Quiet ")))["slug"]
    path = f"/api/articles/{slug}/comments"
    body = {"comment": {"body": "hi"}}
    assert errors(await client.post(path, json=body), 401) == {"token": ["is missing"]}
    blank = await client.post(path, json={"comment": {"body": ""}}, headers=ann.auth)
    assert errors(blank, 422) == {"body": ["can't be blank"]}
    for spaces_only in ("   ", "\n"):
        spaces = await client.post(path, json={"comment": {"body": spaces_only}}, headers=ann.auth)
        assert errors(spaces, 422) == {"body": ["can't be blank"]}
    invisible = await client.post(path, json={"comment": {"body": "\u200b"}}, headers=ann.auth)
    assert list(errors(invisible, 422)) == ["body"]
    missing = await client.post(path, json={}, headers=ann.auth)
    assert errors(missing, 422) == {"comment": ["can't be blank"]}
    nowhere = await client.post("/api/articles/nowhere/comments", json=body, headers=ann.auth)
    assert errors(nowhere, 404) == {"article": ["not found"]}
    assert errors(await client.get("/api/articles/nowhere/comments"), 404)


async def test_only_its_author_deletes_a_comment(client: httpx.AsyncClient) -> None:
    jake, ann, bob = await register(client), await register(client), await register(client)
    made, after = await write_at(client, jake, unique_name("Moderated "))
    slug = made["slug"]
    said = await say(client, slug, {**ann.auth, **after}, "Mine")
    path = f"/api/articles/{slug}/comments/{said}"
    assert errors(await client.delete(path), 401) == {"token": ["is missing"]}
    assert errors(await client.delete(path, headers=bob.auth), 403) == {"comment": ["forbidden"]}
    unknown = f"/api/articles/{slug}/comments/00000000-0000-7000-8000-000000000000"
    assert errors(await client.delete(unknown, headers=ann.auth), 404) == {"comment": ["not found"]}
    bad_id = f"/api/articles/{slug}/comments/12"
    assert errors(await client.delete(bad_id, headers=ann.auth), 404)
    assert (await client.delete(path, headers=ann.auth)).status_code == 204
    left = (await client.get(f"/api/articles/{slug}/comments", headers=ann.auth)).json()
    assert left == {"comments": []}


async def test_a_comment_answers_the_time_the_list_shows(client: httpx.AsyncClient) -> None:
    jake = await register(client)
    slug = (await write(client, jake, unique_name("Timed ")))["slug"]
    answer = await client.post(
        f"/api/articles/{slug}/comments", json={"comment": {"body": "First!"}}, headers=jake.auth
    )
    posted = answer.json()["comment"]
    (listed,) = (await client.get(f"/api/articles/{slug}/comments", headers=jake.auth)).json()[
        "comments"
    ]
    assert (posted["createdAt"], posted["updatedAt"]) == (listed["createdAt"], listed["updatedAt"])


async def test_each_comment_shows_its_own_author_as_the_reader_sees_them(
    client: httpx.AsyncClient,
) -> None:
    # Commenters with bios of their own, some followed by the reader and some not, and one
    # writing twice: every comment carries its own author's profile, and following is the
    # reader's (the authors of a page are looked up together, not one by one).
    jake, reader = await register(client), await register(client)
    commenters = [await register(client) for _ in range(4)]
    made, after = await write_at(client, jake, unique_name("Busy "))
    slug = made["slug"]
    for n, who in enumerate(commenters):
        bio = await client.put("/api/user", json={"user": {"bio": f"bio {n}"}}, headers=who.auth)
        assert bio.status_code == 200, bio.text
    followed = {commenters[1].username, commenters[3].username}
    for name in followed:
        answer = await client.post(f"/api/profiles/{name}/follow", headers=reader.auth)
        assert answer.status_code == 200, answer.text
    for n, who in enumerate([*commenters, commenters[0]]):
        await say(client, slug, {**who.auth, **after}, f"comment {n}")
    bios = {who.username: f"bio {n}" for n, who in enumerate(commenters)}
    written = ["comment 4", "comment 3", "comment 2", "comment 1", "comment 0"]
    expected = [
        {
            "username": who.username,
            "bio": bios[who.username],
            "image": None,
            "following": who.username in followed,
        }
        for who in [commenters[0], *reversed(commenters)]
    ]
    shown: list[dict[str, object]] = []

    async def all_shown() -> bool:
        nonlocal shown
        listed = await client.get(f"/api/articles/{slug}/comments", headers=reader.auth)
        assert listed.status_code == 200, listed.text
        shown = listed.json()["comments"]
        return [c["body"] for c in shown] == written and [c["author"] for c in shown] == expected

    try:
        await wait_until(all_shown, timeout_s=30)
    except TimeoutError:
        raise AssertionError(f"{shown} is not {written} by {expected}") from None


async def test_a_comment_on_a_withdrawn_article_is_still_its_writers_to_delete(
    client: httpx.AsyncClient,
) -> None:
    """As on /v1: the article's comments are hidden with it, but the one who wrote a
    comment (and the article's author) may still delete it (it was 404 on /api only).
    To anyone else the article is not there, as a read says."""
    jake, ann, bob = await register(client), await register(client), await register(client)
    made, after = await write_at(client, jake, unique_name("Withdrawn talk "))
    slug = made["slug"]
    mine = await say(client, slug, {**ann.auth, **after}, "Mine")
    theirs = await say(client, slug, {**bob.auth, **after}, "Bob's")
    article_id = await _article_id(client, jake.token, made["title"])
    v1 = {"authorization": f"Bearer {jake.token}"}
    withdrawn = await client.post(f"/v1/articles/{article_id}/withdraw", headers=v1)
    assert withdrawn.status_code == 200, withdrawn.text
    seen = {"bloghub-after": withdrawn.headers["bloghub-position"]}
    assert errors(await client.get(f"/api/articles/{slug}/comments", headers=seen), 404)
    # Bob may not delete Ann's comment, and is not told the article is there.
    others = await client.delete(
        f"/api/articles/{slug}/comments/{mine}", headers={**bob.auth, **seen}
    )
    assert errors(others, 404) == {"article": ["not found"]}
    gone = await client.delete(
        f"/api/articles/{slug}/comments/{mine}", headers={**ann.auth, **seen}
    )
    assert gone.status_code == 204, gone.text
    by_author = await client.delete(
        f"/api/articles/{slug}/comments/{theirs}", headers={**jake.auth, **seen}
    )
    assert by_author.status_code == 204, by_author.text
    # Republished, neither comment is back.
    republished = await client.post(f"/v1/articles/{article_id}/publish", headers=v1)
    assert republished.status_code == 200, republished.text
    listed = await client.get(
        f"/api/articles/{slug}/comments",
        headers={"bloghub-after": republished.headers["bloghub-position"], **jake.auth},
    )
    assert listed.json() == {"comments": []}, listed.text
