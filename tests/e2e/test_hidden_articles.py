"""Once an author's withdraw is answered, no one's like, collection or comment of the article
lands, however far the projectors lag: such a like waits for the read model to reach the
withdraw (503 to retry while it cannot), then is refused. What was collected before may
still be taken out."""

from __future__ import annotations

import itertools
import uuid
from functools import partial

import httpx

from tests.conftest import isolated, projecting, serve
from tests.e2e.test_accounts import signup_body
from tests.e2e.test_articles import Author, draft
from tests.e2e.test_sessions import bearer, login
from tests.support import once_caught_up, wait_until

_names = itertools.count()


async def someone(client: httpx.AsyncClient) -> Author:
    email = f"hidden{next(_names)}-{uuid.uuid4().hex[:8]}@example.com"
    assert (await client.post("/v1/users", json=signup_body(email))).status_code == 201
    tokens = await login(client, email)
    return Author(tokens["user"]["id"], bearer(tokens["access_token"]))


async def test_no_like_lands_after_a_withdraw_was_answered(run_id: str) -> None:
    async with (
        isolated(run_id, "hidden", read_wait_s=0.5) as s,
        serve(s) as live,
        httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=10) as c,
    ):
        async with projecting(s):
            author, fan, late = await someone(c), await someone(c), await someone(c)
            article_id = await draft(c, author)
            published = await c.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
            after = {"bloghub-after": published.headers["bloghub-position"]}
            found: list[str] = []

            async def applied() -> bool:
                # Projectors just started may take a while: a read whose wait runs out
                # answers as it stands (marked stale), so both are asked again till then.
                detail = await c.get(f"/v1/articles/{article_id}", headers=after)
                listed = await c.get("/api/articles", params={"author": author.id})
                if detail.status_code != 200 or "bloghub-stale" in detail.headers:
                    return False
                found[:] = [a["slug"] for a in listed.json().get("articles", [])]
                return len(found) == 1

            await wait_until(applied, timeout_s=60)
            (slug,) = found
            made = await once_caught_up(
                lambda: c.post("/v1/collections", json={"name": "Later"}, headers=fan.auth)
            )
            entry = f"/v1/collections/{made.json()['collection']['id']}/articles/{article_id}"
            assert (await once_caught_up(lambda: c.put(entry, headers=fan.auth))).status_code == 200
            box = await c.post("/v1/collections", json={"name": "Mine"}, headers=late.auth)
            late_entry = f"/v1/collections/{box.json()['collection']['id']}/articles/{article_id}"
            # Each one's collections are applied for their owner's next write.
            for who in (fan, late):
                mine = await once_caught_up(partial(c.get, "/v1/me/collections", headers=who.auth))
                assert mine.status_code == 200, mine.text

        # The projectors stand still from here: the read models still show it published.
        withdrawn = await c.post(f"/v1/articles/{article_id}/withdraw", headers=author.auth)
        assert withdrawn.status_code == 200, withdrawn.text
        like = await c.put(f"/v1/articles/{article_id}/like", headers=late.auth)
        assert like.status_code == 503, like.text
        assert like.json()["error"]["code"] == "catching_up"
        # The rate limiter reads the withdraw for a canonical id; another spelling of the id
        # is read by the handler, and decides the same.
        like = await c.put(f"/v1/articles/{article_id.upper()}/like", headers=late.auth)
        assert like.status_code == 503, like.text
        assert (await c.put(late_entry, headers=late.auth)).status_code == 503
        favorite = await c.post(f"/api/articles/{slug}/favorite", headers=late.auth)
        assert favorite.status_code == 503, favorite.text
        comments = f"/v1/articles/{article_id}/comments"
        comment = await c.post(comments, json={"content": "late"}, headers=late.auth)
        assert comment.status_code == 503, comment.text
        # The change it waits for is the author's: not said to be the commenter's.
        assert comment.json()["error"]["message"].startswith("a recent change is")
        conduit = {"comment": {"body": "late"}}
        comment = await c.post(f"/api/articles/{slug}/comments", json=conduit, headers=late.auth)
        assert comment.status_code == 503, comment.text
        # Taking it out of a collection waits for nothing but the owner's own writes.
        assert (await c.delete(entry, headers=fan.auth)).status_code == 200

        async with projecting(s):
            like = await once_caught_up(
                lambda: c.put(f"/v1/articles/{article_id}/like", headers=late.auth)
            )
            assert like.status_code == 409, like.text
            # Each of these waits for a read model of its own, which may still be behind.
            entry_put = await once_caught_up(lambda: c.put(late_entry, headers=late.auth))
            assert entry_put.status_code == 409, entry_put.text
            comment = await once_caught_up(
                lambda: c.post(comments, json={"content": "late"}, headers=late.auth)
            )
            assert comment.status_code == 404, comment.text
            comment = await once_caught_up(
                lambda: c.post(f"/api/articles/{slug}/comments", json=conduit, headers=late.auth)
            )
            assert comment.status_code == 404, comment.text
            # Published again: a like from a reader who has seen it lands.
            again = await once_caught_up(
                lambda: c.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
            )
            assert again.status_code == 200
            seen = {"bloghub-after": again.headers["bloghub-position"]}
            like = await c.put(f"/v1/articles/{article_id}/like", headers={**late.auth, **seen})
            assert like.status_code == 200, like.text
