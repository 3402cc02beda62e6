"""A username or slug is everyone's the moment its writer is answered: another reader who
has it (a link shared at once, a follow of someone who just signed up) is asked to retry
while the projectors have not applied it, never told it does not exist; a name nobody
holds is still not found at once."""

from __future__ import annotations

from functools import partial

import httpx

from tests.conftest import projecting
from tests.e2e.conduit_client import Conduit, register, unique_name
from tests.e2e.test_lagging_read_models import site
from tests.support import once_caught_up


async def _applied(c: httpx.AsyncClient, who: Conduit) -> None:
    """Once ``who``'s account is in the users read model (a read of it waits for that): a
    write answered with its author is refused while it is not."""
    shown = await once_caught_up(lambda: c.get("/api/user", headers=who.auth))
    assert shown.status_code == 200, shown.text


def _server_busy(answer: httpx.Response) -> bool:
    return answer.status_code == 503 and "server" in answer.json()["errors"]


async def test_a_new_name_is_waited_for_by_every_reader_not_called_missing(run_id: str) -> None:
    async with site(run_id, "names") as (s, c):
        async with projecting(s):
            reader = await register(c)
            author = await register(c)
            await _applied(c, author)
        # No projector runs from here: what follows is in the log only.
        newcomer = await register(c)
        body = {"title": f"Fresh {unique_name()}", "description": "d", "body": "b"}
        made = await c.post("/api/articles", json={"article": body}, headers=author.auth)
        assert made.status_code == 201, made.text
        slug = made.json()["article"]["slug"]

        profile = f"/api/profiles/{newcomer.username}"
        article = f"/api/articles/{slug}"
        for answer in (
            await c.get(profile),
            await c.get(profile, headers=reader.auth),
            await c.post(f"{profile}/follow", headers=reader.auth),
            await c.get(article),
            await c.post(f"{article}/favorite", headers=reader.auth),
            await c.get(f"{article}/comments"),
            # A profile page lists the newcomer's articles and favorites beside the profile.
            await c.get("/api/articles", params={"author": newcomer.username}),
            await c.get("/api/articles", params={"favorited": newcomer.username}),
        ):
            assert _server_busy(answer), (answer.request.url, answer.status_code, answer.text)
        # What no one holds is not found, without waiting for anything.
        assert (await c.get(f"/api/profiles/{unique_name('nobody')}")).status_code == 404
        assert (await c.get(f"/api/articles/{unique_name('no-such')}")).status_code == 404

        async with projecting(s):
            for listing in ("author", "favorited"):
                query = {listing: newcomer.username}
                page = await once_caught_up(partial(c.get, "/api/articles", params=query))
                assert page.json() == {"articles": [], "articlesCount": 0}, page.text
            followed = await once_caught_up(
                lambda: c.post(f"{profile}/follow", headers=reader.auth)
            )
            assert followed.status_code == 200, followed.text
            assert followed.json()["profile"]["following"] is True
            shown = await once_caught_up(lambda: c.get(article))
            assert shown.status_code == 200, shown.text
            assert shown.json()["article"]["author"]["username"] == author.username
            # The likes read model has the article once it catches up, maybe a moment after.
            liked = await once_caught_up(lambda: c.post(f"{article}/favorite", headers=reader.auth))
            assert liked.status_code == 200, liked.text
            assert liked.json()["article"]["favorited"] is True


async def test_a_favorite_waits_for_the_likes_projector_when_the_article_is_shown(
    run_id: str,
) -> None:
    """The articles read model may show another author's new article before the one that
    decides likes has it: the favorite is asked to retry, never told the article is gone."""
    async with site(run_id, "favlag") as (s, c):
        async with projecting(s):
            reader = await register(c)
            author = await register(c)
            await _applied(c, author)
        body = {"title": f"Fresh {unique_name()}", "description": "d", "body": "b"}
        made = await c.post("/api/articles", json={"article": body}, headers=author.auth)
        assert made.status_code == 201, made.text
        article = f"/api/articles/{made.json()['article']['slug']}"
        async with projecting(s, "articles", "users"):
            # Read as the reader: every read model but the likes one has the reader's writes.
            shown = await once_caught_up(lambda: c.get(article, headers=reader.auth))
            assert shown.status_code == 200, shown.text
            early = await c.post(f"{article}/favorite", headers=reader.auth)
            assert _server_busy(early), (early.status_code, early.text)

        async with projecting(s):
            liked = await once_caught_up(lambda: c.post(f"{article}/favorite", headers=reader.auth))
            assert liked.status_code == 200, liked.text
            assert liked.json()["article"]["favorited"] is True
            assert liked.json()["article"]["favoritesCount"] == 1


async def test_a_write_that_would_show_its_writer_unapplied_is_refused_before_it_records(
    run_id: str,
) -> None:
    """An article or a comment is answered with its author. While the users projector has
    not applied the writer's own account (new) or rename, that answer would show them as
    "deleted user" or by the name just given up: the write is asked to retry instead, and
    records nothing (it was 201 with author "deleted user")."""
    async with site(run_id, "writer") as (s, c):
        async with projecting(s):
            author = await register(c)
            await _applied(c, author)
            body = {"title": f"Before {unique_name()}", "description": "d", "body": "b"}
            made = await c.post("/api/articles", json={"article": body}, headers=author.auth)
            assert made.status_code == 201, made.text
            slug = made.json()["article"]["slug"]
        # No projector runs from here: what follows is in the log only.
        newcomer = await register(c)
        renamed = unique_name("renamed")
        change = {"user": {"username": renamed}}
        assert (await c.put("/api/user", json=change, headers=author.auth)).status_code == 200
        article = {"article": {"title": f"First {unique_name()}", "description": "d", "body": "b"}}
        comment = {"comment": {"body": "Hello"}}
        for answer in (
            await c.post("/api/articles", json=article, headers=newcomer.auth),
            await c.post("/api/articles", json=article, headers=author.auth),
            await c.put(
                f"/api/articles/{slug}", json={"article": {"body": "New"}}, headers=author.auth
            ),
            await c.post(f"/api/articles/{slug}/comments", json=comment, headers=author.auth),
        ):
            assert _server_busy(answer), (answer.request.url, answer.status_code, answer.text)

        async with projecting(s):
            for who in (newcomer.username, renamed):
                page = await once_caught_up(partial(c.get, "/api/articles", params={"author": who}))
                assert [a["slug"] for a in page.json()["articles"]] == (
                    [slug] if who == renamed else []
                ), page.text
            shown = await once_caught_up(lambda: c.get(f"/api/articles/{slug}"))
            assert shown.json()["article"]["body"] == "b"
            listed = await c.get(f"/api/articles/{slug}/comments")
            assert listed.json() == {"comments": []}
            # Once applied, the same writes are answered with their author as they are.
            again = await c.post("/api/articles", json=article, headers=newcomer.auth)
            assert again.status_code == 201, again.text
            assert again.json()["article"]["author"]["username"] == newcomer.username
