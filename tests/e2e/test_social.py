"""Follows and the feed end to end: idempotent follow and unfollow, counts in profiles,
follower lists with the caller's own status, and a feed that shows a followed author's
next article at once and drops it on unfollow, withdraw or delete."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_articles import Author, draft
from tests.e2e.test_erasure import erase
from tests.e2e.test_sessions import account, bearer, login
from tests.support import wait_until

pytestmark = pytest.mark.usefixtures("live_api")


async def person(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    tokens = await login(client, await account(client, unique_email))
    return Author(tokens["user"]["id"], bearer(tokens["access_token"]))


@pytest.fixture
async def reader(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    return await person(client, unique_email)


@pytest.fixture
async def writer(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    return await person(client, unique_email)


async def publish(client: httpx.AsyncClient, who: Author, title: str = "News") -> tuple[str, str]:
    """A new published article of ``who``: its id and the publish's position."""
    article_id = await draft(client, who, title=title)
    done = await client.post(f"/v1/articles/{article_id}/publish", headers=who.auth)
    assert done.status_code == 200, done.text
    return article_id, done.headers["bloghub-position"]


async def feed_ids(client: httpx.AsyncClient, who: Author, after: str | None = None) -> list[str]:
    headers = {**who.auth, **({"bloghub-after": after} if after else {})}
    answer = await client.get("/v1/feed", headers=headers)
    assert answer.status_code == 200, answer.text
    assert "bloghub-stale" not in answer.headers
    return [a["id"] for a in answer.json()["articles"]]


async def counts(client: httpx.AsyncClient, user_id: str, who: Author) -> tuple[int, int]:
    answer = await client.get(f"/v1/users/{user_id}", headers=who.auth)
    assert answer.status_code == 200, answer.text
    user = answer.json()["user"]
    return user["followers"], user["followees"]


async def test_follow_then_the_authors_next_article_is_in_my_feed_at_once(
    client: httpx.AsyncClient, reader: Author, writer: Author
) -> None:
    before, published = await publish(client, writer, "Before")
    followed = await client.put(f"/v1/users/{writer.id}/follow", headers=reader.auth)
    assert followed.status_code == 200, followed.text
    assert followed.json() == {"follow": {"user_id": writer.id, "following": True}}
    assert await feed_ids(client, reader, after=published) == [before], "earlier ones too"

    article_id, position = await publish(client, writer, "Fresh")
    assert await feed_ids(client, reader, after=position) == [article_id, before]
    item = (await client.get("/v1/feed", headers=reader.auth)).json()["articles"][0]
    assert item["title"] == "Fresh"
    assert item["author"]["id"] == writer.id
    assert [item[k] for k in ("comment_cnt", "like_cnt", "collect_cnt", "read_cnt")] == [0] * 4
    assert (item["liked"], item["collected"]) == (False, False)

    unfollowed = await client.delete(f"/v1/users/{writer.id}/follow", headers=reader.auth)
    assert unfollowed.status_code == 200
    assert await feed_ids(client, reader) == [], "unfollowing removes the author's articles"


async def test_withdrawn_and_deleted_articles_leave_the_feed_at_once(
    client: httpx.AsyncClient, reader: Author, writer: Author
) -> None:
    assert (await client.put(f"/v1/users/{writer.id}/follow", headers=reader.auth)).is_success
    kept, _ = await publish(client, writer, "Kept")
    withdrawn, _ = await publish(client, writer, "Withdrawn")
    deleted, position = await publish(client, writer, "Deleted")
    assert await feed_ids(client, reader, after=position) == [deleted, withdrawn, kept]

    done = await client.post(f"/v1/articles/{withdrawn}/withdraw", headers=writer.auth)
    assert done.status_code == 200
    assert await feed_ids(client, reader, after=done.headers["bloghub-position"]) == [
        deleted,
        kept,
    ]
    gone = await client.delete(f"/v1/articles/{deleted}", headers=writer.auth)
    assert gone.status_code == 204
    assert await feed_ids(client, reader, after=gone.headers["bloghub-position"]) == [kept]


async def test_feed_pages_with_a_cursor(
    client: httpx.AsyncClient, reader: Author, unique_email: Callable[[], str]
) -> None:
    writers = [await person(client, unique_email) for _ in range(3)]
    published: list[str] = []
    position = ""
    for w in writers:
        assert (await client.put(f"/v1/users/{w.id}/follow", headers=reader.auth)).is_success
    for i in range(5):
        article_id, position = await publish(client, writers[i % 3], f"Article {i}")
        published.append(article_id)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await client.get(
            "/v1/feed", params=params, headers={**reader.auth, "bloghub-after": position}
        )
        assert page.status_code == 200, page.text
        seen += [a["id"] for a in page.json()["articles"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == published[::-1], "newest first, each once"


async def test_follow_and_unfollow_are_idempotent_and_counted(
    client: httpx.AsyncClient, reader: Author, writer: Author
) -> None:
    assert (await client.get(f"/v1/users/{writer.id}")).json()["user"]["followers"] == 0
    for _ in range(2):
        answer = await client.put(f"/v1/users/{writer.id}/follow", headers=reader.auth)
        assert answer.status_code == 200
    assert await counts(client, writer.id, reader) == (1, 0)

    async def anonymous_readers_see_one() -> bool:
        profile = (await client.get(f"/v1/users/{writer.id}")).json()
        return bool(profile["user"]["followers"] == 1)

    # The social projector drops the cached counts, and the hot tier the body built on them.
    await wait_until(anonymous_readers_see_one, timeout_s=10)
    assert await counts(client, reader.id, reader) == (0, 1)
    for _ in range(2):
        answer = await client.delete(f"/v1/users/{writer.id}/follow", headers=reader.auth)
        assert answer.status_code == 200
        assert answer.json()["follow"]["following"] is False
    assert await counts(client, writer.id, reader) == (0, 0), "never below zero"
    assert await counts(client, reader.id, reader) == (0, 0)


async def test_follower_lists_are_newest_first_with_my_own_status(
    client: httpx.AsyncClient, reader: Author, writer: Author, unique_email: Callable[[], str]
) -> None:
    fans = [await person(client, unique_email) for _ in range(3)]
    for fan in fans:
        assert (await client.put(f"/v1/users/{writer.id}/follow", headers=fan.auth)).is_success
    # The reader follows the second fan only.
    mine = await client.put(f"/v1/users/{fans[1].id}/follow", headers=reader.auth)
    after = {"bloghub-after": mine.headers["bloghub-position"]}

    async def every_fan_listed() -> bool:
        # The fans' follows are their own writes, not the reader's: the reader's requests
        # wait for the reader's writes only, and see others' once they are projected.
        page = await client.get(f"/v1/users/{writer.id}/followers", params={"limit": "3"})
        return len(page.json()["users"]) == len(fans)

    await wait_until(every_fan_listed, timeout_s=10)
    listed = await client.get(
        f"/v1/users/{writer.id}/followers", params={"limit": "2"}, headers=reader.auth
    )
    assert listed.status_code == 200, listed.text
    first = listed.json()
    assert [u["id"] for u in first["users"]] == [fans[2].id, fans[1].id]
    assert [u["following"] for u in first["users"]] == [False, True]
    rest = await client.get(
        f"/v1/users/{writer.id}/followers",
        params={"limit": "2", "cursor": first["next_cursor"]},
        headers=after,
    )
    assert [u["id"] for u in rest.json()["users"]] == [fans[0].id]
    assert rest.json()["users"][0]["following"] is False, "anonymous: follows nobody"
    assert rest.json()["next_cursor"] is None

    followees = await client.get(f"/v1/users/{fans[1].id}/followees", headers=fans[1].auth)
    assert [u["id"] for u in followees.json()["users"]] == [writer.id]


async def test_bad_follows_are_refused_and_record_nothing(
    client: httpx.AsyncClient, reader: Author, writer: Author
) -> None:
    myself = await client.put(f"/v1/users/{reader.id}/follow", headers=reader.auth)
    assert myself.status_code == 422
    assert myself.json()["error"]["code"] == "invalid_input"
    myself = await client.delete(f"/v1/users/{reader.id}/follow", headers=reader.auth)
    assert myself.status_code == 200, myself.text
    assert myself.json()["follow"] == {"user_id": reader.id, "following": False}
    unknown = "01890000-0000-7000-8000-000000000000"
    for path in (f"/v1/users/{unknown}/follow", "/v1/users/not-an-id/follow"):
        for method in ("PUT", "DELETE"):
            answer = await client.request(method, path, headers=reader.auth)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "not_found"
            assert "bloghub-position" not in answer.headers
    for path in (f"/v1/users/{unknown}/followers", f"/v1/users/{unknown}/followees"):
        assert (await client.get(path)).status_code == 404
    bad_cursor = await client.get(f"/v1/users/{writer.id}/followers", params={"cursor": "!!"})
    assert bad_cursor.status_code == 422
    bad_limit = await client.get("/v1/feed", params={"limit": "0"}, headers=reader.auth)
    assert bad_limit.status_code == 422
    assert await counts(client, reader.id, reader) == (0, 0)


async def test_following_an_erased_person_is_404(
    client: httpx.AsyncClient, reader: Author, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    tokens = await login(client, email)
    erased = await erase(client, tokens["access_token"], password=PASSWORD)
    assert erased.status_code == 204
    answer = await client.put(f"/v1/users/{tokens['user']['id']}/follow", headers=reader.auth)
    assert answer.status_code == 404


async def test_someone_followed_can_be_unfollowed_after_erasing_their_account(
    client: httpx.AsyncClient, reader: Author, unique_email: Callable[[], str]
) -> None:
    """Following them again is 404; ending the follow is not: nobody is left following an
    account they cannot unfollow, counted forever."""
    email = await account(client, unique_email)
    tokens = await login(client, email)
    gone = tokens["user"]["id"]
    assert (await client.put(f"/v1/users/{gone}/follow", headers=reader.auth)).status_code == 200
    assert await counts(client, reader.id, reader) == (0, 1)
    erased = await erase(client, tokens["access_token"], password=PASSWORD)
    assert erased.status_code == 204
    again = await client.put(f"/v1/users/{gone}/follow", headers=reader.auth)
    assert again.status_code == 404
    ended = await client.delete(f"/v1/users/{gone}/follow", headers=reader.auth)
    assert ended.status_code == 200, ended.text
    assert ended.json()["follow"]["following"] is False
    assert await counts(client, reader.id, reader) == (0, 0)
    followees = await client.get(f"/v1/users/{reader.id}/followees", headers=reader.auth)
    assert gone not in [p["id"] for p in followees.json()["users"]], followees.text
    twice = await client.delete(f"/v1/users/{gone}/follow", headers=reader.auth)
    assert twice.status_code == 200


async def test_an_erased_account_leaves_every_follow_list_and_count(
    client: httpx.AsyncClient, reader: Author, writer: Author, unique_email: Callable[[], str]
) -> None:
    """Nobody keeps an erased account among their followers or followees, counted."""
    tokens = await login(client, await account(client, unique_email))
    gone = Author(tokens["user"]["id"], bearer(tokens["access_token"]))
    assert (await client.put(f"/v1/users/{writer.id}/follow", headers=gone.auth)).status_code == 200
    assert (await client.put(f"/v1/users/{gone.id}/follow", headers=reader.auth)).status_code == 200
    assert await counts(client, writer.id, gone) == (1, 0)
    erased = await erase(client, tokens["access_token"], password=PASSWORD)
    assert erased.status_code == 204, erased.text

    async def forgotten() -> bool:
        return await counts(client, writer.id, writer) == (0, 0) and await counts(
            client, reader.id, reader
        ) == (0, 0)

    await wait_until(forgotten, timeout_s=30)
    followers = await client.get(f"/v1/users/{writer.id}/followers", headers=writer.auth)
    followees = await client.get(f"/v1/users/{reader.id}/followees", headers=reader.auth)
    assert followers.json()["users"] == []
    assert followees.json()["users"] == []


async def test_who_may_do_what_on_every_social_route(
    client: httpx.AsyncClient, reader: Author, writer: Author
) -> None:
    writes = [("PUT", f"/v1/users/{writer.id}/follow"), ("DELETE", f"/v1/users/{writer.id}/follow")]
    for method, path in [*writes, ("GET", "/v1/feed")]:
        anonymous = await client.request(method, path)
        assert anonymous.status_code == 401, (method, path)
        forged = await client.request(method, path, headers=bearer("not-a-token"))
        assert forged.status_code == 401, (method, path)
        assert (await client.request(method, path, headers=reader.auth)).status_code == 200
    for path in (f"/v1/users/{writer.id}/followers", f"/v1/users/{writer.id}/followees"):
        assert (await client.get(path)).status_code == 200, "public"
        assert (await client.get(path, headers=reader.auth)).status_code == 200
        assert (await client.get(path, headers=bearer("not-a-token"))).status_code == 401


async def test_presence_follows_the_callers_own_follow_and_unfollow_at_once(
    client: httpx.AsyncClient, reader: Author, writer: Author
) -> None:
    """A follower just made sees the user's presence; one who just left no longer does."""
    path = f"/v1/users/{writer.id}/presence"
    for _ in range(3):
        followed = await client.put(f"/v1/users/{writer.id}/follow", headers=reader.auth)
        assert followed.status_code == 200, followed.text
        seen = await client.get(path, headers=reader.auth)
        assert seen.status_code == 200, seen.text
        assert seen.json()["presence"]["user_id"] == writer.id
        left = await client.delete(f"/v1/users/{writer.id}/follow", headers=reader.auth)
        assert left.status_code == 200, left.text
        assert (await client.get(path, headers=reader.auth)).status_code == 403
