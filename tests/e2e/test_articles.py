"""Articles end to end: drafts, publishing, editing and republishing, withdrawing,
authorization, optimistic concurrency, idempotent retries, lists and tags."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import orjson
import pytest

from bloghub.adapters.redis.cache import FENCE
from bloghub.api import idempotency
from bloghub.api.idempotency import fingerprint_of
from bloghub.readmodels import author_first_page_key, published_key
from bloghub.settings import Settings
from tests.conftest import LiveServer, pg
from tests.e2e.test_sessions import account, bearer, login


@dataclass
class Author:
    id: str
    auth: dict[str, str]


@pytest.fixture
async def author(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    tokens = await login(client, await account(client, unique_email))
    return Author(tokens["user"]["id"], bearer(tokens["access_token"]))


@pytest.fixture
async def other(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    tokens = await login(client, await account(client, unique_email))
    return Author(tokens["user"]["id"], bearer(tokens["access_token"]))


async def draft(client: httpx.AsyncClient, who: Author, **fields: object) -> str:
    body = {
        "title": "Hello 世界",
        "content": "# Intro\n\nSome *text*.",
        "tags": ["python"],
        **fields,
    }
    answer = await client.post("/v1/articles", json=body, headers=who.auth)
    assert answer.status_code == 201, answer.text
    article_id: str = answer.json()["article"]["id"]
    return article_id


async def test_create_publish_read_at_once(client: httpx.AsyncClient, author: Author) -> None:
    article_id = await draft(client, author)
    mine = await client.get(f"/v1/me/articles/{article_id}", headers=author.auth)
    assert mine.status_code == 200
    assert mine.json()["article"]["status"] == "draft"
    assert (await client.get(f"/v1/articles/{article_id}")).status_code == 404, "drafts hidden"

    published = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    assert published.status_code == 200, published.text
    reader = await client.get(
        f"/v1/articles/{article_id}",
        headers={"bloghub-after": published.headers["bloghub-position"]},
    )
    assert reader.status_code == 200
    article = reader.json()["article"]
    assert article["title"] == "Hello 世界"
    assert article["author"]["id"] == author.id
    assert article["tags"] == ["python"]
    assert "bloghub-stale" not in reader.headers
    by_author = await client.get(f"/v1/articles/{article_id}", headers=author.auth)
    assert by_author.status_code == 200


async def test_edit_changes_only_the_draft_until_republished(
    client: httpx.AsyncClient, author: Author
) -> None:
    article_id = await draft(client, author)
    first = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    after = {"bloghub-after": first.headers["bloghub-position"]}
    published = await client.get(f"/v1/articles/{article_id}", headers=after)
    assert published.status_code == 200
    published_at = published.json()["article"]["updated_at"]

    edited = await client.put(
        f"/v1/articles/{article_id}",
        json={"title": "Second title", "content": "new body", "tags": ["go", "rust"]},
        headers=author.auth,
    )
    assert edited.status_code == 200, edited.text
    after = {"bloghub-after": edited.headers["bloghub-position"]}
    public = (await client.get(f"/v1/articles/{article_id}", headers=after)).json()["article"]
    assert public["title"] == "Hello 世界", "readers keep the published version"
    assert public["updated_at"] == published_at, "and its time: the draft's edit is unseen"
    mine = (await client.get(f"/v1/me/articles/{article_id}", headers=author.auth)).json()
    assert mine["article"]["title"] == "Second title"

    again = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    after = {"bloghub-after": again.headers["bloghub-position"]}
    public = (await client.get(f"/v1/articles/{article_id}", headers=after)).json()["article"]
    assert public["title"] == "Second title"
    assert public["tags"] == ["go", "rust"]
    assert public["updated_at"] > published_at


async def test_publishing_what_is_published_records_nothing(
    client: httpx.AsyncClient, author: Author
) -> None:
    """A second publish with no edit between: readers already see the draft as it stands,
    so no version is made and the article's update time stays."""
    article_id = await draft(client, author)
    first = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    assert first.status_code == 200, first.text
    after = {"bloghub-after": first.headers["bloghub-position"]}
    before = (await client.get(f"/v1/articles/{article_id}", headers=after)).json()["article"]
    again = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    assert again.status_code == 200, again.text
    assert again.json()["article"] == {"id": article_id, "version": 2, "status": "published"}
    assert "bloghub-position" not in again.headers
    now = (await client.get(f"/v1/articles/{article_id}", headers=author.auth)).json()["article"]
    assert (now["version"], now["updated_at"]) == (before["version"], before["updated_at"])


async def test_publishing_a_draft_edited_back_to_what_is_published_records_nothing(
    client: httpx.AsyncClient, author: Author
) -> None:
    """A draft saved as it was, or edited away and back, is what readers already see:
    publishing it makes no version, and the article keeps its update time. The answer
    names the version readers see, and an edit based on it is taken."""
    article_id = await draft(client, author)
    url = f"/v1/articles/{article_id}"
    first = await client.post(f"{url}/publish", headers=author.auth)
    assert first.status_code == 200, first.text
    after = {"bloghub-after": first.headers["bloghub-position"]}
    before = (await client.get(url, headers=after)).json()["article"]
    published = {"title": "Hello 世界", "content": "# Intro\n\nSome *text*.", "tags": ["python"]}
    away = {"title": "Elsewhere", "content": "other", "tags": []}
    for edits in ([{"title": "Hello 世界"}], [away, published]):
        for edit in edits:
            edited = await client.put(url, json=edit, headers=author.auth)
            assert edited.status_code == 200, edited.text
        again = await client.post(f"{url}/publish", headers=author.auth)
        assert again.status_code == 200, again.text
        assert again.json()["article"] == {"id": article_id, "version": 2, "status": "published"}
        assert "bloghub-position" not in again.headers
        now = (await client.get(url, headers=author.auth)).json()["article"]
        assert (now["version"], now["updated_at"]) == (before["version"], before["updated_at"])
    based = {"title": "Third", "version": again.json()["article"]["version"]}
    edited = await client.put(url, json=based, headers=author.auth)
    assert edited.status_code == 200, edited.text
    third = await client.post(f"{url}/publish", headers=author.auth)
    after = {"bloghub-after": third.headers["bloghub-position"]}
    now = (await client.get(url, headers=after)).json()["article"]
    assert (now["title"], now["version"]) == ("Third", third.json()["article"]["version"])
    assert now["updated_at"] > before["updated_at"]


async def test_republishing_a_withdrawn_article_as_it_was_keeps_its_update_time(
    client: httpx.AsyncClient, author: Author
) -> None:
    """Readers see the same article again, on /v1 and /api; one edited while withdrawn
    shows its new update time."""
    tag = f"t{uuid.uuid4().hex[:12]}"
    article_id = await draft(client, author, tags=[tag])
    url = f"/v1/articles/{article_id}"

    async def step(name: str) -> dict[str, str]:
        done = await client.post(f"{url}/{name}", headers=author.auth)
        assert done.status_code == 200, done.text
        return {"bloghub-after": done.headers["bloghub-position"]}

    async def shown(after: dict[str, str]) -> tuple[str, str]:
        v1 = (await client.get(url, headers=after)).json()["article"]
        (item,) = (await client.get("/api/articles", params={"tag": tag}, headers=after)).json()[
            "articles"
        ]
        return v1["updated_at"], item["updatedAt"]

    first = await shown(await step("publish"))
    await step("withdraw")
    assert await shown(await step("publish")) == first
    await step("withdraw")
    edited = await client.put(url, json={"title": "Changed"}, headers=author.auth)
    assert edited.status_code == 200, edited.text
    later = await shown(await step("publish"))
    assert later[0] > first[0]
    assert later[1] > first[1]


async def test_withdraw_hides_from_readers_and_delete_removes(
    client: httpx.AsyncClient, author: Author
) -> None:
    article_id = await draft(client, author)
    published = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    after = {"bloghub-after": published.headers["bloghub-position"]}
    assert (await client.get(f"/v1/articles/{article_id}", headers=after)).status_code == 200
    withdrawn = await client.post(f"/v1/articles/{article_id}/withdraw", headers=author.auth)
    assert withdrawn.status_code == 200
    after = {"bloghub-after": withdrawn.headers["bloghub-position"]}
    assert (await client.get(f"/v1/articles/{article_id}", headers=after)).status_code == 404
    assert (await client.get(f"/v1/articles/{article_id}")).status_code == 404, "cache cleared"
    listed = (await client.get(f"/v1/articles?author={author.id}", headers=after)).json()
    assert article_id not in [a["id"] for a in listed["articles"]]
    again = await client.post(f"/v1/articles/{article_id}/withdraw", headers=author.auth)
    assert again.status_code == 409

    gone = await client.delete(f"/v1/articles/{article_id}", headers=author.auth)
    assert gone.status_code == 204
    mine = await client.get(f"/v1/me/articles/{article_id}", headers=author.auth)
    assert mine.status_code == 404


async def test_only_the_author_changes_an_article(
    client: httpx.AsyncClient, author: Author, other: Author
) -> None:
    article_id = await draft(client, author)
    # Others learn of the draft once it is projected (before that it is unknown to them,
    # 404): the author's own read waits for it.
    seen = await client.get(f"/v1/me/articles/{article_id}", headers=author.auth)
    assert seen.status_code == 200, seen.text
    body = {"title": "hijack", "content": "", "tags": []}
    attempts = {
        "edit": await client.put(f"/v1/articles/{article_id}", json=body, headers=other.auth),
        "publish": await client.post(f"/v1/articles/{article_id}/publish", headers=other.auth),
        "withdraw": await client.post(f"/v1/articles/{article_id}/withdraw", headers=other.auth),
        "delete": await client.delete(f"/v1/articles/{article_id}", headers=other.auth),
    }
    assert {k: a.status_code for k, a in attempts.items()} == dict.fromkeys(attempts, 403)
    assert (
        await client.get(f"/v1/me/articles/{article_id}", headers=other.auth)
    ).status_code == 404
    anonymous = await client.post(f"/v1/articles/{article_id}/publish")
    assert anonymous.status_code == 401
    unknown = "01a21c55-c7a4-73d1-a44c-16eb1e146e7d"
    for answer in (
        await client.put(f"/v1/articles/{unknown}", json=body, headers=author.auth),
        await client.post(f"/v1/articles/{unknown}/publish", headers=author.auth),
        await client.post(f"/v1/articles/{unknown}/withdraw", headers=author.auth),
        await client.delete(f"/v1/articles/{unknown}", headers=author.auth),
        await client.post("/v1/articles/not-an-id/publish", headers=author.auth),
    ):
        assert answer.status_code == 404
    mine = (await client.get(f"/v1/me/articles/{article_id}", headers=author.auth)).json()
    assert mine["article"]["title"] == "Hello 世界"


async def test_an_edit_keeps_the_content_and_tags_it_leaves_out(
    client: httpx.AsyncClient, author: Author
) -> None:
    """A client changing the title alone does not empty the draft: what an edit leaves
    out (or sends as null) is kept; what it sends, empty included, is set."""
    article_id = await draft(client, author)
    mine = f"/v1/me/articles/{article_id}"
    retitled = await client.put(
        f"/v1/articles/{article_id}", json={"title": "Only the title"}, headers=author.auth
    )
    assert retitled.status_code == 200, retitled.text
    kept = (await client.get(mine, headers=author.auth)).json()["article"]
    assert (kept["title"], kept["content"], kept["tags"]) == (
        "Only the title",
        "# Intro\n\nSome *text*.",
        ["python"],
    )
    cleared = await client.put(
        f"/v1/articles/{article_id}",
        json={"title": "Emptied", "content": "", "tags": [], "version": kept["version"]},
        headers=author.auth,
    )
    assert cleared.status_code == 200, cleared.text
    emptied = (await client.get(mine, headers=author.auth)).json()["article"]
    assert (emptied["content"], emptied["tags"]) == ("", [])


async def test_a_stale_edit_is_refused(client: httpx.AsyncClient, author: Author) -> None:
    article_id = await draft(client, author)
    body = {"title": "v2", "content": "x", "tags": [], "version": 1}
    assert (
        await client.put(f"/v1/articles/{article_id}", json=body, headers=author.auth)
    ).status_code == 200
    stale = await client.put(
        f"/v1/articles/{article_id}", json={**body, "title": "lost"}, headers=author.auth
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["fields"] == {"version": "stale"}
    assert stale.json()["error"]["message"] == "the draft changed since version 1 (now 2)"
    # A version the draft never had is not told the draft changed since.
    ahead = await client.put(
        f"/v1/articles/{article_id}", json={**body, "version": 123}, headers=author.auth
    )
    assert ahead.status_code == 409
    assert ahead.json()["error"]["message"] == "the draft has no version 123 yet (now 2)"


async def test_only_the_newest_version_key_is_kept(
    client: httpx.AsyncClient, author: Author, settings: Settings
) -> None:
    article_id = await draft(client, author)
    for version in range(1, 6):
        body = {"title": f"v{version + 1}", "content": "x", "tags": [], "version": version}
        edited = await client.put(f"/v1/articles/{article_id}", json=body, headers=author.auth)
        assert edited.status_code == 200, edited.text
    published = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    assert published.json()["article"]["version"] == 7
    async with pg(settings) as conn:
        keys = await conn.fetch(
            "SELECT value, status FROM reservations WHERE kind = 'article_version' "
            "AND value LIKE $1 || ':%'",
            article_id,
        )
    assert [(k["value"], k["status"]) for k in keys] == [(f"{article_id}:0000000007", "confirmed")]


async def test_concurrent_edits_never_overwrite_silently(
    client: httpx.AsyncClient, author: Author
) -> None:
    article_id = await draft(client, author)
    answers = await asyncio.gather(
        *(
            client.put(
                f"/v1/articles/{article_id}",
                json={"title": f"t{i}", "content": "", "tags": []},
                headers=author.auth,
            )
            for i in range(5)
        )
    )
    ok = [a for a in answers if a.status_code == 200]
    assert len(ok) >= 1
    assert all(a.status_code in (200, 409) for a in answers)
    versions = [a.json()["article"]["version"] for a in ok]
    assert len(versions) == len(set(versions)), "each accepted edit got its own version"


async def test_a_key_left_running_by_a_process_that_died_never_runs_the_write_again(
    client: httpx.AsyncClient,
    author: Author,
    live_api: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process killed mid-request leaves its key "running"; its write may be in the log.
    The key lapsed after 60 s and the retry wrote again (a second article). Past that
    bound the retry is now told the first may or may not be recorded, as when the
    producer gave up; within it, once it has waited for an answer, that the first still
    runs."""
    monkeypatch.setattr(idempotency, "RUNNING_WAIT_S", 0.3)
    body = {"title": "Cut short", "content": "x", "tags": []}
    c = live_api.container
    for started, status, code in (
        (time.time() - 61, 409, "unconfirmed"),
        (time.time(), 409, "conflict"),
    ):
        key = f"crash-{secrets.token_hex(4)}"
        left = {
            "state": "running",
            "fingerprint": fingerprint_of(orjson.dumps(body)),
            "at": started,
        }
        entry = c.cache.key("idem", author.id, "POST", "/v1/articles", key)
        await c.redis.set(entry, orjson.dumps(left), ex=3600)
        retried = await client.post(
            "/v1/articles", json=body, headers={**author.auth, "idempotency-key": key}
        )
        assert retried.status_code == status, retried.text
        assert retried.json()["error"]["code"] == code
    mine = await client.get("/v1/me/articles", headers=author.auth)
    assert "Cut short" not in [a["title"] for a in mine.json()["articles"]]


async def test_a_retry_sent_while_the_first_runs_gets_the_first_answer(
    client: httpx.AsyncClient, author: Author, live_api: LiveServer
) -> None:
    """A double-clicked Publish: the second request arrives while the first still runs. It
    was told 409 "still running" and the front end showed an error for a publish that
    succeeded; it now waits for the first's answer and gets it. If the first recorded
    nothing (its key is freed), the retry runs the write itself."""
    body = {"title": "Double click", "content": "x", "tags": []}
    c = live_api.container
    headers = {**author.auth, "idempotency-key": ""}

    async def first_running(key: str) -> str:
        entry = c.cache.key("idem", author.id, "POST", "/v1/articles", key)
        left = {"state": "running", "fingerprint": fingerprint_of(orjson.dumps(body))}
        await c.redis.set(entry, orjson.dumps({**left, "at": time.time()}), ex=3600)
        return entry

    # The first finishes while the retry waits: the retry answers what the first did.
    key = f"double-{secrets.token_hex(4)}"
    entry = await first_running(key)
    retry = asyncio.create_task(
        client.post("/v1/articles", json=body, headers=headers | {"idempotency-key": key})
    )
    await asyncio.sleep(0.5)
    assert not retry.done()
    answer = {"article": {"id": "first-answer"}}
    done = {
        "state": "done",
        "status": 201,
        "body": json.dumps(answer),
        "headers": {"content-type": "application/json"},
        "fingerprint": fingerprint_of(orjson.dumps(body)),
    }
    await c.redis.set(entry, orjson.dumps(done), ex=3600)
    replayed = await retry
    assert (replayed.status_code, replayed.json()) == (201, answer), replayed.text
    assert replayed.headers["idempotent-replay"] == "true"

    # The first recorded nothing and freed its key: the retry writes, once.
    key = f"double-{secrets.token_hex(4)}"
    entry = await first_running(key)
    retry = asyncio.create_task(
        client.post("/v1/articles", json=body, headers=headers | {"idempotency-key": key})
    )
    await asyncio.sleep(0.5)
    await c.redis.delete(entry)
    ran = await retry
    assert ran.status_code == 201, ran.text
    assert "idempotent-replay" not in ran.headers
    mine = await client.get("/v1/me/articles", headers=author.auth)
    assert [a["title"] for a in mine.json()["articles"]].count("Double click") == 1


async def test_idempotent_create_and_publish(client: httpx.AsyncClient, author: Author) -> None:
    key = {"idempotency-key": f"create-{secrets.token_hex(4)}"}
    body = {"title": "Once", "content": "only once", "tags": []}
    first = await client.post("/v1/articles", json=body, headers={**author.auth, **key})
    retry = await client.post("/v1/articles", json=body, headers={**author.auth, **key})
    # The same request spaced and ordered otherwise (a client that encodes it again).
    again = b'{ "tags": [],\n  "content": "only once", "title": "Once" }'
    respelled = await client.post(
        "/v1/articles",
        content=again,
        headers={**author.auth, **key, "content-type": "application/json"},
    )
    assert respelled.status_code == 201, respelled.text
    assert respelled.json() == first.json()
    assert first.status_code == retry.status_code == 201
    assert first.json() == retry.json()
    assert retry.headers["idempotent-replay"] == "true"
    reused = await client.post(
        "/v1/articles", json={**body, "title": "Other"}, headers={**author.auth, **key}
    )
    assert reused.status_code == 422
    mine = (await client.get("/v1/me/articles", headers=author.auth)).json()["articles"]
    assert [a["title"] for a in mine].count("Once") == 1

    article_id = first.json()["article"]["id"]
    pkey = {"idempotency-key": f"publish-{secrets.token_hex(4)}"}
    p1 = await client.post(f"/v1/articles/{article_id}/publish", headers={**author.auth, **pkey})
    p2 = await client.post(f"/v1/articles/{article_id}/publish", headers={**author.auth, **pkey})
    assert p1.json() == p2.json()
    mine = (await client.get(f"/v1/me/articles/{article_id}", headers=author.auth)).json()
    assert mine["article"]["version"] == 2, "the retried publish appended nothing"


async def test_my_articles_page_newest_first_with_a_cursor(
    client: httpx.AsyncClient, author: Author
) -> None:
    ids = [await draft(client, author, title=f"n{i}", content="word " * 100) for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        url = "/v1/me/articles?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=author.auth)).json()
        seen += [a["id"] for a in page["articles"]]
        assert all(len(a["abstract"]) <= 200 and "content" not in a for a in page["articles"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    bad = await client.get("/v1/me/articles?cursor=@@@", headers=author.auth)
    assert bad.status_code == 422
    assert (await client.get("/v1/me/articles?limit=0", headers=author.auth)).status_code == 422
    for query, field in (
        ("tag=a%00b", "tag"),
        # A filter takes a tag as listed, up to 576: 32 characters of the longest fold.
        ("tag=" + "t" * 577, "tag"),
        ("tag=" + "\ufdfa" * 33, "tag"),  # within 576 as sent, 594 once folded
        ("author=not-an-id", "author"),
    ):
        wrong = await client.get(f"/v1/articles?{query}")
        assert wrong.status_code == 422, query
        assert set(wrong.json()["error"]["fields"]) == {field}, query
    # Of the documented form, but not a cursor this API gave: there is no such page.
    unknown = await client.get("/v1/articles?cursor=MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHxub3Bl")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


async def test_readers_filter_by_author_and_tag_and_see_tag_counts(
    client: httpx.AsyncClient, author: Author
) -> None:
    tag = f"tag-{secrets.token_hex(3)}"
    ids = []
    for i in range(3):
        article_id = await draft(client, author, title=f"t{i}", tags=[tag, "common"])
        answer = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
        ids.append(article_id)
    after = {"bloghub-after": answer.headers["bloghub-position"]}
    by_tag = (await client.get(f"/v1/articles?tag={tag}&limit=2", headers=after)).json()
    assert [a["id"] for a in by_tag["articles"]] == [ids[2], ids[1]]
    rest = (
        await client.get(f"/v1/articles?tag={tag}&limit=2&cursor={by_tag['next_cursor']}")
    ).json()
    assert [a["id"] for a in rest["articles"]] == [ids[0]]
    by_author = (await client.get(f"/v1/articles?author={author.id}")).json()
    assert {a["id"] for a in by_author["articles"]} == set(ids)
    counts = {t["tag"]: t["articles"] for t in (await client.get("/v1/tags")).json()["tags"]}
    assert counts[tag] == 3


def full_width(text: str) -> str:
    """``text``'s ASCII letters and digits as a Chinese input method in full-width mode
    types them (U+FF01 on)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# Two spellings of one tag on two articles, the spellings any of which finds both, and the
# one the tag lists show: by case, by width, by Chinese script.
Fold = Callable[[str], tuple[tuple[str, str], tuple[str, ...], str]]


def _by_case(w: str) -> tuple[tuple[str, str], tuple[str, ...], str]:
    return (w, w.lower()), (w, w.lower(), w.upper()), w.lower()


def _by_width(w: str) -> tuple[tuple[str, str], tuple[str, ...], str]:
    wide = full_width(w)
    return (wide, w.lower()), (wide, w, w.lower(), full_width(w.upper())), w.lower()


def _by_script(w: str) -> tuple[tuple[str, str], tuple[str, ...], str]:
    traditional, simplified = f"數據庫{w.lower()}", f"数据库{w.lower()}"
    return (traditional, simplified), (traditional, simplified), simplified


@pytest.mark.parametrize("fold", [_by_case, _by_width, _by_script], ids=["case", "width", "script"])
async def test_tags_written_differently_are_one_tag_site_wide(
    client: httpx.AsyncClient, author: Author, fold: Fold
) -> None:
    """ "Python" and "python", a tag typed in full-width letters and its plain form, 數據庫
    and 数据库: on two articles each pair is one tag, counted once with both, listed in one
    form, and any spelling finds both, on /v1, /api and search alike. Each article shows
    its tags as its author wrote them, and one article cannot carry two spellings."""
    mark = secrets.token_hex(3)
    written, filters, listed = fold(f"Tag{mark}")
    ids = []
    for spelling in written:
        article_id = await draft(client, author, title=f"fold {mark}", tags=[spelling])
        answer = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
        assert answer.status_code == 200, answer.text
        ids.append(article_id)
    after = {"bloghub-after": answer.headers["bloghub-position"]}
    for spelling in filters:
        found = (await client.get("/v1/articles", params={"tag": spelling}, headers=after)).json()
        assert [a["id"] for a in found["articles"]] == ids[::-1], spelling
        conduit = (await client.get("/api/articles", params={"tag": spelling})).json()
        assert conduit["articlesCount"] == 2, spelling
        hits = await client.get(
            "/v1/search/articles", params={"q": mark, "tag": spelling}, headers=after
        )
        assert hits.status_code == 200, hits.text
        assert sorted(a["id"] for a in hits.json()["articles"]) == sorted(ids), spelling
    counts = {t["tag"]: t["articles"] for t in (await client.get("/v1/tags")).json()["tags"]}
    assert counts[listed] == 2
    assert not {w for w in written if w != listed} & set(counts)
    shown = (await client.get(f"/v1/articles/{ids[0]}", headers=after)).json()["article"]
    assert shown["tags"] == [written[0]]
    both = await client.post(
        "/v1/articles",
        json={"title": "both", "content": "x", "tags": [*written, "other"]},
        headers=author.auth,
    )
    assert both.status_code == 201, both.text
    mine = await client.get(f"/v1/me/articles/{both.json()['article']['id']}", headers=author.auth)
    assert mine.json()["article"]["tags"] == [written[0], "other"]


async def test_a_tag_as_the_tag_lists_show_it_filters(
    client: httpx.AsyncClient, author: Author
) -> None:
    """The tag lists show tags lower-cased, and "İ" lower-cased is two characters: a tag
    of 32 characters was listed at up to 64, then refused as a filter (422)."""
    tag = "İ" * 24 + secrets.token_hex(4)
    assert len(tag) == 32
    assert len(tag.lower()) == 56
    article_id = await draft(client, author, title="dotted", tags=[tag])
    answer = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    after = {"bloghub-after": answer.headers["bloghub-position"]}
    listed = [t["tag"] for t in (await client.get("/v1/tags", headers=after)).json()["tags"]]
    assert tag.lower() in listed
    found = await client.get("/v1/articles", params={"tag": tag.lower()}, headers=after)
    assert found.status_code == 200, found.text
    assert [a["id"] for a in found.json()["articles"]] == [article_id]
    conduit = (await client.get("/api/articles", params={"tag": tag.lower()})).json()
    assert conduit["articlesCount"] == 1


# U+FDFA, an Arabic ligature, as NFKC writes it: 18 characters, the longest fold there is.
SALLALLAHOU = (
    "\u0635\u0644\u0649 \u0627\u0644\u0644\u0647 \u0639\u0644\u064a\u0647 \u0648\u0633\u0644\u0645"
)


async def test_every_tag_the_tag_lists_show_filters_as_shown(
    client: httpx.AsyncClient, author: Author
) -> None:
    """Folding can lengthen a tag many times over and write a spacing accent as a space
    and a combining mark: a 32-character tag of "\u3231" is listed as "(\u682a)" 28 times
    (88 characters), one of "\ufdfa" at 18 characters each, "\uffe3" as a space and a
    macron. Each listed form finds the tag's articles on /v1, in search and on /api, as
    does the tag as its author wrote it."""
    word = "w" + secrets.token_hex(5)
    h = [secrets.token_hex(2) for _ in range(4)]
    written = [
        "\u3231" * 28 + h[0],
        "\u3231" + "\ufdfa" * 29 + h[1][:2],
        "\uffe3" + h[2],
        "\u3231" + h[3] + " \uffe3",
    ]
    listed = [
        "(\u682a)" * 28 + h[0],
        "(\u682a)" + SALLALLAHOU * 29 + h[1][:2],
        " \u0304" + h[2],
        "(\u682a)" + h[3] + "  \u0304",
    ]
    assert max(len(tag) for tag in written) == 32
    ids = []
    for _ in range(2):  # used twice: among the 100 most used, wherever its name sorts
        article_id = await draft(client, author, title=word, tags=written)
        answer = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
        assert answer.status_code == 200, answer.text
        ids.append(article_id)
    after = {"bloghub-after": answer.headers["bloghub-position"]}
    shown = {t["tag"] for t in (await client.get("/v1/tags", headers=after)).json()["tags"]}
    assert set(listed) <= shown
    for tag in [*listed, *written]:
        found = await client.get("/v1/articles", params={"tag": tag}, headers=after)
        assert found.status_code == 200, found.text
        assert sorted(a["id"] for a in found.json()["articles"]) == sorted(ids), tag
        hits = await client.get(
            "/v1/search/articles", params={"q": word, "tag": tag}, headers=author.auth
        )
        assert hits.status_code == 200, hits.text
        assert sorted(a["id"] for a in hits.json()["articles"]) == sorted(ids), tag
        conduit = await client.get("/api/articles", params={"tag": tag}, headers=after)
        assert conduit.json()["articlesCount"] == 2, tag


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "", "content": "x"}, "title"),
        ({"title": "   ", "content": "x"}, "title"),
        ({"title": "t" * 129, "content": "x"}, "title"),
        ({"title": "ok", "content": "x" * (100 * 1024 + 1)}, "content"),
        ({"title": "ok", "tags": ["a", "b", "c", "d", "e", "f"]}, "tags"),
        ({"title": "ok", "tags": ["t" * 33]}, "tags"),
        ({"title": "ok", "tags": ["a", "B", "c", "d", "e", "F", "a"]}, "tags"),
        ({"title": "ok", "tags": ["a"] * 51}, "tags"),
        ({"title": "ok", "tags": [""]}, "tags"),
        ({"title": "ok", "tags": "python"}, "tags"),
        ({"title": 7}, "title"),
        ({"title": "a\u0000b"}, "title"),
        ({"title": "\u2800\u3164", "content": "x"}, "title"),  # blank, shows nothing
        ({"title": "ok", "tags": ["\u3164"]}, "tags"),
        ({"title": "ok", "tags": ["\ufe0f \u200d"]}, "tags"),
        # Past the BMP: tag characters alone, a private-use or a musical format character.
        ({"title": "\U000e0020\U000e0020", "content": "x"}, "title"),
        ({"title": "ok \U000f0000", "content": "x"}, "title"),
        ({"title": "ok", "tags": ["a\U0001d173"]}, "tags"),
    ],
)
async def test_article_fields_are_checked(
    client: httpx.AsyncClient, author: Author, body: dict[str, object], field: str
) -> None:
    answer = await client.post("/v1/articles", json=body, headers=author.auth)
    assert answer.status_code in (413, 422), answer.text
    if answer.status_code == 422:
        assert field in answer.json()["error"]["fields"]


@pytest.mark.parametrize("version", [1e308, 2**63, 0, 1.5])
async def test_an_edits_version_past_what_is_kept_is_422(
    client: httpx.AsyncClient, author: Author, version: float
) -> None:
    made = await client.post("/v1/articles", json={"title": "versioned"}, headers=author.auth)
    assert made.status_code == 201, made.text
    body = {"title": "edited", "version": version}
    url = f"/v1/articles/{made.json()['article']['id']}"
    answer = await client.put(url, json=body, headers=author.auth)
    assert answer.status_code == 422, answer.text
    assert "version" in answer.json()["error"]["fields"]


async def test_the_largest_content_is_taken_however_its_json_escapes_it(
    client: httpx.AsyncClient, author: Author
) -> None:
    # 100 KB of four-byte characters, sent as most JSON encoders do by default: every one
    # a pair of \u escapes, three times the size of the text itself.
    content = "\U0001f600" * (100 * 1024 // 4)
    body = json.dumps({"title": "emoji", "content": content}).encode()
    assert len(body) > 3 * 100 * 1024
    headers = {**author.auth, "content-type": "application/json"}
    answer = await client.post("/v1/articles", content=body, headers=headers)
    assert answer.status_code == 201, answer.text[:300]
    article_id = answer.json()["article"]["id"]
    mine = await client.get(f"/v1/me/articles/{article_id}", headers=author.auth)
    assert mine.status_code == 200, mine.text[:300]
    assert mine.json()["article"]["content"] == content


async def test_tags_are_one_whatever_their_case_spacing_or_repeats(
    client: httpx.AsyncClient, author: Author
) -> None:
    """Five distinct tags however many times each is sent; tags that differ only in case
    or in runs of spaces of any kind are one (the first spelling kept)."""
    stem = secrets.token_hex(3)
    # A no-break space, and an ideographic one as a Chinese input method in full-width
    # mode types it, are spaces too.
    sent = [
        f"Py{stem}",
        f"py{stem}",
        f"PY{stem}",
        f"x  {stem}",
        f"x {stem}",
        f"x\u00a0{stem}",
        f"x\u3000\u3000{stem}",
        f"x\u2800{stem}",  # the blank braille cell and the Hangul filler show as spaces
        f"x\u3164{stem}",
        f"Py{stem}",
    ]
    made = await client.post(
        "/v1/articles", json={"title": "tags", "content": "", "tags": sent}, headers=author.auth
    )
    assert made.status_code == 201, made.text
    repeated = ["a", "b", "c", "d", "e", "a", "b"]
    five = await client.post(
        "/v1/articles", json={"title": "five", "content": "", "tags": repeated}, headers=author.auth
    )
    assert five.status_code == 201, five.text
    # "ß" is not "ss" in the site's tag lists (lower case, not case folding): an article
    # keeps both, as two other articles would count them apart.
    sharp = [f"Straße{stem}", f"STRASSE{stem}"]
    both = await client.post(
        "/v1/articles", json={"title": "sharp", "content": "", "tags": sharp}, headers=author.auth
    )
    assert both.status_code == 201, both.text
    for answer, tags in (
        (made, [f"Py{stem}", f"x {stem}"]),
        (five, ["a", "b", "c", "d", "e"]),
        (both, sharp),
    ):
        article_id = answer.json()["article"]["id"]
        after = {**author.auth, "bloghub-after": answer.headers["bloghub-position"]}
        mine = await client.get(f"/v1/me/articles/{article_id}", headers=after)
        assert mine.json()["article"]["tags"] == tags


async def test_the_projector_clears_the_caches_it_owns(
    client: httpx.AsyncClient, live_api: LiveServer, author: Author
) -> None:
    cache = live_api.container.cache
    redis = live_api.container.redis
    first_page = author_first_page_key(cache, author.id)
    assert (await client.get("/v1/me/articles", headers=author.auth)).status_code == 200
    assert await redis.exists(first_page), "the author's first page was cached"

    article_id = await draft(client, author)
    published = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    after = {"bloghub-after": published.headers["bloghub-position"]}
    assert (await client.get(f"/v1/articles/{article_id}", headers=after)).status_code == 200
    # Fenced just before the projector's commit, the fence lifted just after it.
    assert await redis.get(first_page) in (None, FENCE), "no old page after the commit"
    for _ in range(50):  # the pre-warm follows the commit
        if await redis.exists(published_key(cache, article_id)):
            break
        await asyncio.sleep(0.02)
    assert await redis.exists(published_key(cache, article_id)), "pre-warmed at publish"

    withdrawn = await client.post(f"/v1/articles/{article_id}/withdraw", headers=author.auth)
    after = {"bloghub-after": withdrawn.headers["bloghub-position"]}
    assert (await client.get(f"/v1/articles/{article_id}", headers=after)).status_code == 404
    assert await redis.get(published_key(cache, article_id)) in (None, FENCE)
    for _ in range(50):
        if not await redis.exists(published_key(cache, article_id), first_page):
            break
        await asyncio.sleep(0.02)
    assert not await redis.exists(published_key(cache, article_id), first_page), "lifted"
    assert (await client.get(f"/v1/articles/{article_id}")).status_code == 404
