"""GET /v1/ranking/hot: the articles the job ranked, best first, with their details; bad
limits are 422; with Redis out of reach the last good copy is served and says so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from bloghub.settings import Settings
from tests.conftest import LiveServer, serve
from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_articles import Author
from tests.e2e.test_local_tier import published
from tests.e2e.test_sessions import account, bearer, login
from tests.private_redis import private_redis
from tests.ranking_rows import create_read_models, ranking_job
from tests.support import wait_until

# Far above what any other test's articles collect: these two lead the ranking.
LIKES = (2_000_000, 1_000_000)
# Above those: the withdraw test's two lead while it runs.
TOP = 50_000_000


@pytest.fixture
async def author(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    tokens = await login(client, await account(client, unique_email))
    return Author(tokens["user"]["id"], bearer(tokens["access_token"]))


async def counted(settings: Settings, article_id: str, likes: int, collects: int = 0) -> None:
    """The counters the interactions projector keeps for a published article."""
    await create_read_models(settings)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute(
            "INSERT INTO interactions_g1.article_stats (article_id, author_id, published_at,"
            " visible, like_cnt, collect_cnt) SELECT id, author_id, published_at, true, $2, $3"
            " FROM articles_g1.articles WHERE id = $1 ON CONFLICT (article_id) DO UPDATE"
            " SET like_cnt = excluded.like_cnt, collect_cnt = excluded.collect_cnt",
            *(article_id, likes, collects),
        )
    finally:
        await conn.close()


async def rank(settings: Settings) -> int:
    """One computation, as the job's lock holder makes it."""
    async with ranking_job(settings, "e2e") as job:
        assert await job.lock.hold()
        try:
            return await job.run_once()
        finally:
            await job.lock.release()


async def served_version(url: str, version: int, *, likes: int | None = None) -> httpx.Response:
    """The ranking as served once the process holds ``version`` (it checks every second),
    and, if ``likes`` is given, a first entry with that many likes."""
    answers: list[httpx.Response] = []

    async def reached() -> bool:
        async with httpx.AsyncClient(base_url=url) as anonymous:
            answers.append(await anonymous.get("/v1/ranking/hot"))
        if int(answers[-1].headers["bloghub-ranking-version"]) < version:
            return False
        return likes is None or bool(answers[-1].json()["articles"][0]["like_cnt"] == likes)

    await wait_until(reached, timeout_s=20)
    return answers[-1]


async def test_the_hottest_articles_come_first_with_their_details(
    client: httpx.AsyncClient, live_api: LiveServer, settings: Settings, author: Author
) -> None:
    first = await published(client, author, "Most liked")
    second = await published(client, author, "Liked too")
    await counted(settings, first, LIKES[0], collects=7)
    await counted(settings, second, LIKES[1])
    comment = await client.post(
        f"/v1/articles/{first}/comments", json={"content": "First!"}, headers=author.auth
    )
    assert comment.status_code == 201, comment.text
    reply = {"content": "Second.", "parent_id": comment.json()["comment"]["id"]}
    replied = await client.post(f"/v1/articles/{first}/comments", json=reply, headers=author.auth)
    assert replied.status_code == 201, replied.text
    after = {"bloghub-after": replied.headers["bloghub-position"]}
    assert (await client.get(f"/v1/articles/{first}", headers=after)).json()["article"][
        "comment_cnt"
    ] == 2
    answer = await served_version(live_api.url, await rank(settings))

    assert answer.status_code == 200, answer.text
    assert "bloghub-stale" not in answer.headers
    body: dict[str, Any] = answer.json()
    top = body["articles"][:2]
    assert [e["id"] for e in top] == [first, second]
    assert top[0]["title"] == "Most liked"
    assert top[0]["author"]["id"] == author.id
    assert top[0]["tags"] == ["python"]
    assert [top[0][k] for k in ("like_cnt", "collect_cnt", "comment_cnt")] == [LIKES[0], 7, 2]
    assert top[1]["comment_cnt"] == 0
    assert top[0]["score"] > top[1]["score"] > 0
    assert len(body["articles"]) <= 20
    # Times are written as everywhere else in the API: the detail's form, UTC as "Z".
    detail = (await client.get(f"/v1/articles/{first}")).json()["article"]
    assert top[0]["published_at"] == detail["published_at"]
    assert body["computed_at"].endswith("Z")

    one = await client.get("/v1/ranking/hot", params={"limit": 1})
    assert [e["id"] for e in one.json()["articles"]] == [first]


@pytest.mark.parametrize("limit", ["0", "101", "-3", "ten", ""])
async def test_a_bad_limit_is_422_in_the_error_shape(client: httpx.AsyncClient, limit: str) -> None:
    answer = await client.get("/v1/ranking/hot", params={"limit": limit})
    assert answer.status_code == 422, answer.text
    assert "limit" in answer.json()["error"]["fields"]


async def test_a_forged_position_or_token_is_refused_as_on_every_read(
    client: httpx.AsyncClient, author: Author
) -> None:
    forged = await client.get("/v1/ranking/hot", headers={"bloghub-after": "not-a-position"})
    assert forged.status_code == 400, forged.text
    bad = await client.get("/v1/ranking/hot", headers=bearer("garbage"))
    assert bad.status_code == 401, bad.text
    assert "error" in bad.json()
    signed_in = await client.get("/v1/ranking/hot", headers=author.auth)
    assert signed_in.status_code == 200, signed_in.text


async def test_with_redis_down_the_last_good_copy_is_served_and_marked_stale(
    client: httpx.AsyncClient, live_api: LiveServer, settings: Settings, author: Author
) -> None:
    article_id = await published(client, author, "Served from memory")
    await counted(settings, article_id, LIKES[0] * 2)
    async with private_redis() as store:
        own = settings.model_copy(
            update={"redis_url": SecretStr(store.url), "ranking_check_s": 0.1}
        )
        version = await rank(own)
        async with serve(own) as api:
            good = await served_version(api.url, version)
            assert good.json()["articles"][0]["id"] == article_id
            assert "bloghub-stale" not in good.headers

            await store.stop()
            answers: list[httpx.Response] = []

            async def marked_stale() -> bool:
                async with httpx.AsyncClient(base_url=api.url) as anonymous:
                    answers.append(await anonymous.get("/v1/ranking/hot"))
                return bool(answers[-1].headers.get("bloghub-stale") == "true")

            await wait_until(marked_stale, timeout_s=20)
            assert all(a.status_code == 200 for a in answers)
            assert all(a.content == good.content for a in answers)

            # Back, empty (no persistence): its versions start again from 1, and the next
            # result is still told apart from the copy held.
            await store.start()

            # Reached again but empty: the copy held is served on, still marked stale,
            # not an empty ranking (it was version 0, unmarked, until the job ran).
            async def redis_reached() -> bool:
                async with httpx.AsyncClient(base_url=api.url) as anonymous:
                    ready = (await anonymous.get("/readyz")).json()
                return bool(ready["checks"]["redis"])

            await wait_until(redis_reached, timeout_s=20)
            held: list[httpx.Response] = []

            async def checked_empty_store() -> bool:
                async with httpx.AsyncClient(base_url=api.url) as anonymous:
                    held.append(await anonymous.get("/v1/ranking/hot"))
                return len(held) >= 10

            await wait_until(checked_empty_store, timeout_s=20)  # a few checks, 0.1 s apart
            assert all(a.content == good.content for a in held), held[-1].text
            assert all(a.headers.get("bloghub-stale") == "true" for a in held)
            await counted(settings, article_id, LIKES[0] * 3)
            assert await rank(own) == version
            fresh = await served_version(api.url, version, likes=LIKES[0] * 3)
            assert "bloghub-stale" not in fresh.headers


async def test_no_ranking_yet_is_an_empty_list_not_an_error(settings: Settings) -> None:
    async with (
        private_redis() as store,
        serve(settings.model_copy(update={"redis_url": SecretStr(store.url)})) as api,
        httpx.AsyncClient(base_url=api.url) as anonymous,
    ):
        answer = await anonymous.get("/v1/ranking/hot")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"articles": [], "version": 0, "computed_at": None}


async def test_a_process_that_never_read_the_ranking_answers_503_while_redis_is_down(
    settings: Settings,
) -> None:
    async with private_redis() as store:
        await store.stop()
        own = settings.model_copy(update={"redis_url": SecretStr(store.url)})
        async with serve(own) as api, httpx.AsyncClient(base_url=api.url) as anonymous:
            answer = await anonymous.get("/v1/ranking/hot")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "unavailable"


async def test_a_withdrawn_article_leaves_the_ranking_at_once_and_returns_when_republished(
    client: httpx.AsyncClient, live_api: LiveServer, settings: Settings, author: Author
) -> None:
    """The job ranks visible articles once a minute; a withdraw does not wait for its next
    run: once projected, no API process serves the article in the ranking."""
    first = await published(client, author, "Withdrawn soon")
    second = await published(client, author, "Stays")
    await counted(settings, first, 2 * TOP)
    await counted(settings, second, TOP)
    ranked = await served_version(live_api.url, await rank(settings), likes=2 * TOP)
    assert [e["id"] for e in ranked.json()["articles"][:2]] == [first, second]

    withdrawn = await client.post(f"/v1/articles/{first}/withdraw", headers=author.auth)
    assert withdrawn.status_code == 200, withdrawn.text
    version = int(ranked.headers["bloghub-ranking-version"])
    answers: list[httpx.Response] = []

    async def left() -> bool:
        answers.append(await client.get("/v1/ranking/hot"))
        return first not in [e["id"] for e in answers[-1].json()["articles"]]

    await wait_until(left, timeout_s=15)
    assert int(answers[-1].headers["bloghub-ranking-version"]) > version
    assert answers[-1].json()["articles"][0]["id"] == second

    again = await client.post(f"/v1/articles/{first}/publish", headers=author.auth)
    assert again.status_code == 200, again.text
    await counted(settings, first, 3 * TOP)
    back = await served_version(live_api.url, await rank(settings), likes=3 * TOP)
    assert back.json()["articles"][0]["id"] == first


async def test_an_erased_authors_nickname_leaves_the_ranking_at_once(
    client: httpx.AsyncClient, live_api: LiveServer, settings: Settings, author: Author
) -> None:
    """An erasure does not wait for the job's next run either: once projected, no API
    process shows the person's nickname in the ranking (SECURITY.md, "Erasure")."""
    nickname = f"ranked-{author.id[-12:]}"
    named = await client.patch("/v1/users/me", json={"nickname": nickname}, headers=author.auth)
    assert named.status_code == 200, named.text
    article = await published(client, author, "By someone leaving")
    # Below the other tests' leaders: theirs stay first whatever runs after this.
    await counted(settings, article, LIKES[1] // 2)
    after = {"bloghub-after": named.headers["bloghub-position"]}
    assert (await client.get(f"/v1/users/{author.id}", headers=after)).status_code == 200
    version = await rank(settings)

    def shown(answer: httpx.Response) -> dict[str, Any]:
        (entry,) = [e for e in answer.json()["articles"] if e["id"] == article]
        return dict(entry["author"])

    await served_version(live_api.url, version)
    ranked = await client.get("/v1/ranking/hot", params={"limit": 100})
    assert shown(ranked) == {"id": author.id, "nickname": nickname, "deleted": False}

    gone = await client.request(
        "DELETE", "/v1/users/me", json={"password": PASSWORD}, headers=author.auth
    )
    assert gone.status_code == 204, gone.text
    answers: list[httpx.Response] = []

    async def erased() -> bool:
        answers.append(await client.get("/v1/ranking/hot", params={"limit": 100}))
        return shown(answers[-1]) == {"id": author.id, "nickname": None, "deleted": True}

    await wait_until(erased, timeout_s=15)
    assert int(answers[-1].headers["bloghub-ranking-version"]) > version
    assert nickname not in answers[-1].text
