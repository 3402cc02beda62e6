"""A comment someone learned of before the comments read model applied it (a notification,
pushed by the notifications projector, which lags apart) is waited for, not said not to
exist: a reply to it, its replies page and its deletion answer 503 to retry while the
comments projector stands still, and work once it has caught up, with no position sent."""

from __future__ import annotations

from typing import Any

import httpx

from bloghub.settings import Settings
from tests.conftest import isolated, pg, projecting, serve
from tests.e2e.test_articles import Author, draft
from tests.e2e.test_hidden_articles import someone
from tests.support import once_caught_up, wait_until

EVERY_BUT_COMMENTS = ("users", "articles", "social", "interactions", "notifications")


async def published_article(s: Settings, c: httpx.AsyncClient) -> tuple[Author, Author, str]:
    """An author, a reader and the author's article, published and applied everywhere."""
    async with projecting(s):
        author, reader = await someone(c), await someone(c)
        article_id = await draft(c, author)
        published = await c.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
        seen = {"bloghub-after": published.headers["bloghub-position"]}

        async def everywhere() -> bool:
            # A read whose wait runs out answers as it stands (here 404, marked stale):
            # asked again until the projectors just started have applied the publish.
            answer = await c.get(f"/v1/articles/{article_id}", headers=seen)
            return answer.status_code == 200 and "bloghub-stale" not in answer.headers

        await wait_until(everywhere, timeout_s=60)
    return author, reader, article_id


async def test_a_comment_not_applied_yet_is_waited_for_not_refused(run_id: str) -> None:
    async with (
        isolated(run_id, "clag", read_wait_s=0.5) as s,
        serve(s) as live,
        httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=10) as c,
    ):
        author, reader, article_id = await published_article(s, c)

        async with projecting(s, *EVERY_BUT_COMMENTS):
            posted = await c.post(
                f"/v1/articles/{article_id}/comments",
                json={"content": "first"},
                headers=reader.auth,
            )
            assert posted.status_code == 201, posted.text
            comment_id = posted.json()["comment"]["id"]
            # The author, told of it, acts on it at once: not yet, rather than never.
            reply = {"content": "thanks", "parent_id": comment_id}
            url = f"/v1/articles/{article_id}/comments"
            early = await c.post(url, json=reply, headers=author.auth)
            assert early.status_code == 503, early.text
            assert early.json()["error"]["code"] == "catching_up"
            thread = await c.get(f"/v1/comments/{comment_id}/replies")
            assert thread.status_code == 503, thread.text
            gone = await c.delete(f"/v1/comments/{comment_id}", headers=author.auth)
            assert gone.status_code == 503, gone.text

        async with projecting(s):
            answered = await once_caught_up(lambda: c.post(url, json=reply, headers=author.auth))
            assert answered.status_code == 201, answered.text
            thread = await c.get(f"/v1/comments/{comment_id}/replies")
            assert thread.status_code == 200, thread.text
            # An id no comment ever had is still not found, once the log is caught up with.
            missing = await c.get("/v1/comments/01a24300-0000-7000-8000-000000000000/replies")
            assert missing.status_code == 404, missing.text


async def test_a_comment_applied_while_it_is_looked_for_is_found(run_id: str) -> None:
    # A reply to a comment posted a moment before: the first look misses it, and the
    # comments projector applies it before the check of how far it has come. It was then
    # refused as unknown (422); it is found.
    async with (
        isolated(run_id, "crace") as s,
        serve(s) as live,
        httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=10) as c,
    ):
        author, reader, article_id = await published_article(s, c)
        url = f"/v1/articles/{article_id}/comments"
        async with projecting(s, *EVERY_BUT_COMMENTS):
            posted = await c.post(url, json={"content": "first"}, headers=reader.auth)
            assert posted.status_code == 201, posted.text
            comment_id = posted.json()["comment"]["id"]
            log_ends = live.container.log_ends
            asked = log_ends.now

            async def applied_meanwhile(
                topic: str, partitions: int, only: int | None = None
            ) -> Any:
                ends = await asked(topic, partitions, only)
                async with projecting(s, "comments"), pg(s) as conn:

                    async def there() -> bool:
                        sql = "SELECT 1 FROM comments_g1.comments WHERE id = $1"
                        return await conn.fetchval(sql, comment_id) is not None

                    await wait_until(there, timeout_s=30)
                return ends

            log_ends.now = applied_meanwhile  # type: ignore[method-assign]
            try:
                reply = {"content": "thanks", "parent_id": comment_id}
                answered = await c.post(url, json=reply, headers=author.auth, timeout=60)
            finally:
                del log_ends.now
            assert answered.status_code == 201, answered.text
            assert answered.json()["comment"]["parent_id"] == comment_id
