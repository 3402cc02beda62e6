"""The requests a Conduit front end makes, in its order, against the real pipeline: each
answered as the RealWorld spec says, with no retry and no extra header between a write
and the read that shows it."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conduit_client import PASSWORD, assert_article, register, unique_name, write_at

pytestmark = pytest.mark.usefixtures("live_api")


async def test_a_front_end_signs_up_writes_reads_favorites_follows_comments_and_logs_in_again(
    client: httpx.AsyncClient,
) -> None:
    author = await register(client)
    reader = await register(client)
    me = await client.get("/api/user", headers=author.auth)
    assert me.status_code == 200, me.text
    assert me.json()["user"]["username"] == author.username

    tag = unique_name("dragons")
    made, published = await write_at(client, author, tagList=[tag, "training"])
    assert made["tagList"] == [tag, "training"], "the author's order"
    assert (made["favorited"], made["favoritesCount"]) == (False, 0)
    slug = made["slug"]

    # The home page's global feed and tag filter, and the article page: at once.
    home = await client.get("/api/articles", params={"limit": 10, "offset": 0}, headers=author.auth)
    assert home.status_code == 200, home.text
    assert slug in [a["slug"] for a in home.json()["articles"]]
    by_tag = (await client.get("/api/articles", params={"tag": tag}, headers=author.auth)).json()
    assert [a["slug"] for a in by_tag["articles"]] == [slug]
    assert by_tag["articlesCount"] == 1
    assert_article(by_tag["articles"][0], listed=True)
    tags = (await client.get("/api/tags", headers=author.auth)).json()["tags"]
    assert tag in tags
    # The reader names the author's position (a reader waits for its own writes alone).
    page = await client.get(f"/api/articles/{slug}", headers={**reader.auth, **published})
    assert page.status_code == 200, page.text
    assert page.json()["article"]["body"] == "You have to believe"

    # The reader favorites it and follows its author; the answers show the change.
    favorited = await client.post(
        f"/api/articles/{slug}/favorite", headers={**reader.auth, **published}
    )
    assert favorited.status_code == 200, favorited.text
    shown = favorited.json()["article"]
    assert (shown["favorited"], shown["favoritesCount"]) == (True, 1)
    again = (await client.get(f"/api/articles/{slug}", headers=reader.auth)).json()["article"]
    assert (again["favorited"], again["favoritesCount"]) == (True, 1)
    followed = await client.post(f"/api/profiles/{author.username}/follow", headers=reader.auth)
    assert followed.status_code == 200, followed.text
    assert followed.json()["profile"]["following"] is True

    # The reader's own writes need no header; the feed also shows another's article, which
    # the reader names (the feed's copy of articles is its own projector's).
    feed = await client.get("/api/articles/feed", headers={**reader.auth, **published})
    assert feed.status_code == 200, feed.text
    assert [a["slug"] for a in feed.json()["articles"]] == [slug]
    assert feed.json()["articlesCount"] == 1
    item = feed.json()["articles"][0]
    assert item["author"]["following"] is True
    assert item["favorited"] is True

    # A comment, shown in the article's comments at once.
    said = await client.post(
        f"/api/articles/{slug}/comments",
        json={"comment": {"body": "Thank you so much!"}},
        headers=reader.auth,
    )
    assert said.status_code == 201, said.text
    comment = said.json()["comment"]
    assert comment["author"]["username"] == reader.username
    listed = (await client.get(f"/api/articles/{slug}/comments", headers=reader.auth)).json()
    assert [c["id"] for c in listed["comments"]] == [comment["id"]]

    # Log out (the front end forgets the token) and in again.
    logged_in = await client.post(
        "/api/users/login", json={"user": {"email": reader.email, "password": PASSWORD}}
    )
    assert logged_in.status_code == 200, logged_in.text
    user = logged_in.json()["user"]
    assert user["username"] == reader.username
    assert user["token"]
    fresh = {"authorization": f"Token {user['token']}"}
    mine = await client.get("/api/articles", params={"favorited": reader.username}, headers=fresh)
    assert [a["slug"] for a in mine.json()["articles"]] == [slug]
