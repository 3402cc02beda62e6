"""Likes, collections and reads end to end: idempotent per user, never negative, only on
published articles, frozen and hidden when withdrawn, reads counted once per reader and
hour, and the liker sees their like at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bloghub.settings import Settings
from tests.conftest import pg
from tests.e2e.test_articles import Author, draft
from tests.e2e.test_sessions import account, bearer, login
from tests.support import wait_until

BURST = 40  # likes at once: more than the API engine's pool (10) and overflow (10) hold


@pytest.fixture
async def author(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    tokens = await login(client, await account(client, unique_email))
    return Author(tokens["user"]["id"], bearer(tokens["access_token"]))


@pytest.fixture
async def fan(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    tokens = await login(client, await account(client, unique_email))
    return Author(tokens["user"]["id"], bearer(tokens["access_token"]))


async def published(client: httpx.AsyncClient, author: Author) -> tuple[str, dict[str, str]]:
    """A published article, and the header that waits for its publish."""
    article_id = await draft(client, author)
    done = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    assert done.status_code == 200, done.text
    return article_id, {"bloghub-after": done.headers["bloghub-position"]}


async def seen_by(client: httpx.AsyncClient, article_id: str, who: Author) -> dict[str, Any]:
    answer = await client.get(f"/v1/articles/{article_id}", headers=who.auth)
    assert answer.status_code == 200, answer.text
    article: dict[str, Any] = answer.json()["article"]
    return article


async def test_liking_twice_counts_once_and_unliking_never_goes_below_zero(
    client: httpx.AsyncClient, author: Author, fan: Author
) -> None:
    article_id, after = await published(client, author)
    url = f"/v1/articles/{article_id}/like"
    # Another user's unlike of what they never liked changes nothing.
    assert (await client.delete(url, headers={**author.auth, **after})).status_code == 200
    for _ in range(2):
        liked = await client.put(url, headers={**fan.auth, **after})
        assert liked.status_code == 200, liked.text
        assert liked.json() == {"article": {"id": article_id, "liked": True}}
    mine = await seen_by(client, article_id, fan)  # read-your-writes: no header needed
    assert (mine["like_cnt"], mine["liked"]) == (1, True)
    anonymous = await client.get(
        f"/v1/articles/{article_id}", headers={"bloghub-after": liked.headers["bloghub-position"]}
    )
    assert anonymous.json()["article"]["like_cnt"] == 1
    assert anonymous.json()["article"]["liked"] is None

    for _ in range(2):
        assert (await client.delete(url, headers=fan.auth)).status_code == 200
    mine = await seen_by(client, article_id, fan)
    assert (mine["like_cnt"], mine["liked"]) == (0, False)
    listed = await client.get(f"/v1/articles?author={author.id}", headers=fan.auth)
    entry = next(a for a in listed.json()["articles"] if a["id"] == article_id)
    assert (entry["like_cnt"], entry["liked"]) == (0, False)


async def test_only_published_articles_are_liked_or_collected(
    client: httpx.AsyncClient, author: Author, fan: Author
) -> None:
    unpublished = await draft(client, author)
    refused = await client.put(f"/v1/articles/{unpublished}/like", headers=fan.auth)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"]
    assert (await client.put("/v1/articles/not-an-id/like", headers=fan.auth)).status_code == 404
    assert (await client.put(f"/v1/articles/{unpublished}/like")).status_code == 401

    article_id, after = await published(client, author)
    liked = await client.put(f"/v1/articles/{article_id}/like", headers={**fan.auth, **after})
    assert liked.status_code == 200
    assert (await seen_by(client, article_id, fan))["like_cnt"] == 1
    gone = await client.post(f"/v1/articles/{article_id}/withdraw", headers=author.auth)
    assert gone.status_code == 200
    hidden = {"bloghub-after": gone.headers["bloghub-position"]}
    again = await client.put(f"/v1/articles/{article_id}/like", headers={**fan.auth, **hidden})
    assert again.status_code == 409, again.text
    undo = await client.delete(f"/v1/articles/{article_id}/like", headers={**fan.auth, **hidden})
    assert undo.status_code == 409, "withdrawn counts are frozen"
    assert (await client.get(f"/v1/articles/{article_id}", headers=hidden)).status_code == 404
    listed = await client.get(f"/v1/articles?author={author.id}", headers=hidden)
    assert article_id not in {a["id"] for a in listed.json()["articles"]}

    back = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    shown = await client.get(
        f"/v1/articles/{article_id}", headers={"bloghub-after": back.headers["bloghub-position"]}
    )
    assert shown.json()["article"]["like_cnt"] == 1, "the count was kept while hidden"


async def test_collections_hold_published_articles_and_are_private(
    client: httpx.AsyncClient, author: Author, fan: Author
) -> None:
    first, _ = await published(client, author)
    second, after2 = await published(client, author)
    made = await client.post("/v1/collections", json={"name": "读书"}, headers=fan.auth)
    assert made.status_code == 201, made.text
    box = made.json()["collection"]["id"]
    assert made.json() == {"collection": {"id": box, "name": "读书"}}
    assert (
        await client.post("/v1/collections", json={"name": ""}, headers=fan.auth)
    ).status_code == 422

    for article_id in (first, second, first):
        put = await client.put(
            f"/v1/collections/{box}/articles/{article_id}", headers={**fan.auth, **after2}
        )
        assert put.status_code == 200, put.text
        # What the write names, not counts it cannot know yet (the list has those).
        assert put.json()["collection"] == {"id": box, "name": "读书"}
    mine = await seen_by(client, first, fan)
    assert (mine["collect_cnt"], mine["collected"]) == (1, True)
    boxes = (await client.get("/v1/me/collections", headers=fan.auth)).json()["collections"]
    assert [(b["id"], b["name"], b["articles"]) for b in boxes] == [(box, "读书", 2)]

    page = await client.get(f"/v1/collections/{box}/articles?limit=1", headers=fan.auth)
    assert page.status_code == 200
    rest = await client.get(
        f"/v1/collections/{box}/articles?limit=1&cursor={page.json()['next_cursor']}",
        headers=fan.auth,
    )
    ids = [a["id"] for a in page.json()["articles"] + rest.json()["articles"]]
    assert sorted(ids) == sorted([first, second])
    assert rest.json()["next_cursor"] is None
    # Each is listed as every listing shows an article, with when it was put in.
    entry = next(a for a in page.json()["articles"] + rest.json()["articles"] if a["id"] == first)
    detail = await seen_by(client, first, fan)
    same = ("title", "author", "tags", "published_at", "like_cnt", "collect_cnt", "collected")
    assert {k: entry[k] for k in same} == {k: detail[k] for k in same}
    assert (entry["collect_cnt"], entry["collected"], entry["liked"]) == (1, True, False)
    assert entry["added_at"]

    other = await client.get(f"/v1/collections/{box}/articles", headers=author.auth)
    assert other.status_code == 404, "another user's collection is not found"
    theirs = await client.put(f"/v1/collections/{box}/articles/{first}", headers=author.auth)
    assert theirs.status_code == 404

    # A second collection of the same reader holding it: still one reader who collected it
    # (a reader cannot raise its count, and its rank, collection by collection).
    spare = await client.post("/v1/collections", json={"name": "再读"}, headers=fan.auth)
    box2 = spare.json()["collection"]["id"]
    put2 = await client.put(
        f"/v1/collections/{box2}/articles/{first}", headers={**fan.auth, **after2}
    )
    assert put2.status_code == 200, put2.text
    mine = await seen_by(client, first, fan)
    assert (mine["collect_cnt"], mine["collected"]) == (1, True)

    for _ in range(2):
        out = await client.delete(f"/v1/collections/{box}/articles/{first}", headers=fan.auth)
        assert out.status_code == 200
        # Taken out of one, it is still in the other: the answer says the caller holds it.
        assert out.json()["article"] == {"id": first, "collected": True}
    mine = await seen_by(client, first, fan)
    assert (mine["collect_cnt"], mine["collected"]) == (1, True), "the other collection holds it"
    out = await client.delete(f"/v1/collections/{box2}/articles/{first}", headers=fan.auth)
    assert out.status_code == 200
    assert out.json()["article"] == {"id": first, "collected": False}
    mine = await seen_by(client, first, fan)
    assert (mine["collect_cnt"], mine["collected"]) == (0, False)


async def test_reads_count_once_per_reader_and_hour_and_never_the_authors(
    client: httpx.AsyncClient, author: Author, fan: Author
) -> None:
    article_id, after = await published(client, author)
    url = f"/v1/articles/{article_id}"
    for _ in range(3):
        assert (await client.get(url, headers={**fan.auth, **after})).status_code == 200
        assert (await client.get(url, headers={**author.auth, **after})).status_code == 200
    # An anonymous reader is their address: another User-Agent is not another reader.
    for address, agent in (
        ("198.51.100.7", "a/1"),
        ("198.51.100.8", "a/1"),
        ("198.51.100.7", "b/2"),
        ("198.51.100.7", "c/3"),
    ):
        headers = {**after, "x-forwarded-for": address, "user-agent": agent}
        assert (await client.get(url, headers=headers)).status_code == 200
    # A HEAD serves no article: no read.
    head = await client.head(url, headers={**after, "x-forwarded-for": "198.51.100.11"})
    assert head.status_code == 200

    async def read_cnt() -> int:
        # Watched as one of the anonymous readers already counted: watching counts nothing.
        answer = await client.get(url, headers={"x-forwarded-for": "198.51.100.8"})
        count: int = answer.json()["article"]["read_cnt"]
        return count

    async def counted() -> bool:
        return await read_cnt() >= 3

    await wait_until(counted, timeout_s=30)
    assert await read_cnt() == 3
    # The fan reads again, then a new address through /api (RealWorld's reads count as
    # /v1's): once the new reader is counted, the fan's read before it was seen too, and
    # not counted again within the hour.
    await client.get(url, headers={**fan.auth, **after})
    listed = await client.get("/api/articles", params={"author": author.id}, headers=after)
    (slug,) = [a["slug"] for a in listed.json()["articles"]]
    read = await client.get(f"/api/articles/{slug}", headers={"x-forwarded-for": "198.51.100.9"})
    assert read.status_code == 200, read.text

    async def fourth() -> bool:
        return await read_cnt() >= 4

    await wait_until(fourth, timeout_s=30)
    assert await read_cnt() == 4


# The API's own database clients (the engines, and the kept pool of one-statement reads).
API_CLIENTS = ("bloghub", "bloghub-reads", "bloghub-checks")


async def api_backends(settings: Settings) -> set[tuple[int, object, str]]:
    async with pg(settings) as conn:
        rows = await conn.fetch(
            "SELECT pid, backend_start, application_name FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = ANY($1::text[])",
            list(API_CLIENTS),
        )
    return {(r["pid"], r["backend_start"], r["application_name"]) for r in rows}


async def test_a_burst_of_likes_churns_no_database_connections(
    client: httpx.AsyncClient, settings: Settings, author: Author, fan: Author
) -> None:
    """What a like decides on is read on connections the API keeps: a burst of likes,
    more than the engine's pool holds, closes none of the connections it used, so none is
    opened again for the next burst (each one a new server process, a TLS attempt and a
    SCRAM exchange, at the moment the API is busiest)."""
    article_id, after = await published(client, author)
    url = f"/v1/articles/{article_id}/like"

    async def burst() -> list[int]:
        answers = await asyncio.gather(
            *(client.put(url, headers={**fan.auth, **after}) for _ in range(BURST))
        )
        return [a.status_code for a in answers]

    assert await burst() == [200] * BURST  # the pools grow to what a burst needs
    kept = await api_backends(settings)
    seen: set[tuple[int, object, str]] = set()
    likes = asyncio.ensure_future(burst())
    while not likes.done():  # a connection opened for the burst is open during it
        seen |= await api_backends(settings)
    assert await likes == [200] * BURST
    # A pool may grow to what the burst needs, but keeps what it opened.
    assert seen - kept - await api_backends(settings) == set()


async def test_a_withdrawn_or_deleted_article_leaves_collections_and_a_republished_one_returns(
    client: httpx.AsyncClient, author: Author, fan: Author
) -> None:
    """Withdrawing or deleting hides an article everywhere: a reader's collections too (not
    listed, not counted); its entry is kept, so republishing shows it again."""
    withdrawn, _ = await published(client, author)
    deleted, _ = await published(client, author)
    kept, after = await published(client, author)
    made = await client.post("/v1/collections", json={"name": "later"}, headers=fan.auth)
    box = made.json()["collection"]["id"]
    for article_id in (withdrawn, deleted, kept):
        put = await client.put(
            f"/v1/collections/{box}/articles/{article_id}", headers={**fan.auth, **after}
        )
        assert put.status_code == 200, put.text
    out = await client.post(f"/v1/articles/{withdrawn}/withdraw", headers=author.auth)
    assert out.status_code == 200, out.text
    gone = await client.delete(f"/v1/articles/{deleted}", headers=author.auth)
    assert gone.status_code in (200, 204), gone.text
    position = gone.headers["bloghub-position"]

    async def listed() -> tuple[list[str], int]:
        headers = {**fan.auth, "bloghub-after": position}
        entries = await client.get(f"/v1/collections/{box}/articles", headers=headers)
        boxes = await client.get("/v1/me/collections", headers=headers)
        counted = [b["articles"] for b in boxes.json()["collections"] if b["id"] == box]
        return [a["id"] for a in entries.json()["articles"]], counted[0]

    async def only_kept() -> bool:
        return await listed() == ([kept], 1)

    await wait_until(only_kept, timeout_s=60)
    again = await client.post(f"/v1/articles/{withdrawn}/publish", headers=author.auth)
    assert again.status_code == 200, again.text
    position = again.headers["bloghub-position"]

    async def back() -> bool:
        ids, count = await listed()
        return sorted(ids) == sorted([withdrawn, kept]) and count == 2

    await wait_until(back, timeout_s=60)


async def test_a_reader_has_at_most_a_thousand_collections(
    client: httpx.AsyncClient, settings: Settings, fan: Author
) -> None:
    """The caller's list is answered whole, so it is bounded: the 1,001st is refused, not
    made and then missing from the list."""
    async with pg(settings) as conn:
        await conn.execute(
            "INSERT INTO interactions_g1.collections (id, owner_id, name, created_at) "
            "SELECT gen_random_uuid(), $1, 'c' || g, now() FROM generate_series(1, 999) g",
            fan.id,
        )
    last = await client.post("/v1/collections", json={"name": "last"}, headers=fan.auth)
    assert last.status_code == 201, last.text
    more = await client.post("/v1/collections", json={"name": "more"}, headers=fan.auth)
    assert more.status_code == 422, more.text
    assert more.json()["error"]["fields"] == {"name": "too many"}
    listed = (await client.get("/v1/me/collections", headers=fan.auth)).json()["collections"]
    assert len(listed) == 1000
    assert listed[-1]["name"] == "last"


async def test_the_author_sees_the_counts_on_their_own_articles(
    client: httpx.AsyncClient, author: Author, fan: Author
) -> None:
    """Their own list and article showed none (the README gives every published article
    its counts); an article never published shows zeros."""
    article_id, after = await published(client, author)
    unpublished = await draft(client, author)
    liked = await client.put(f"/v1/articles/{article_id}/like", headers={**fan.auth, **after})
    assert liked.status_code == 200, liked.text
    mine = await client.put(f"/v1/articles/{article_id}/like", headers=author.auth)
    assert mine.status_code == 200, mine.text
    seen = {"bloghub-after": liked.headers["bloghub-position"]}
    own = await client.get(f"/v1/me/articles/{article_id}", headers={**author.auth, **seen})
    assert own.status_code == 200, own.text
    counts = ("like_cnt", "liked", "collect_cnt", "collected")
    assert [own.json()["article"][k] for k in counts] == [2, True, 0, False]
    listed = await client.get("/v1/me/articles", headers={**author.auth, **seen})
    entries = {a["id"]: a for a in listed.json()["articles"]}
    assert [entries[article_id][k] for k in counts] == [2, True, 0, False]
    assert [entries[unpublished][k] for k in counts] == [0, False, 0, False]
