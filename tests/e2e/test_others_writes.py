"""Acting at once on what another user's answered write made: a comment on, or a like of,
an article whose publish was answered a moment before, and a follow of an account whose
signup was. The projectors may not have applied that write yet; the action waits for them
(or answers 503 ``catching_up``), and never says the article or the account does not
exist, which a client takes as final."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from tests.e2e.conduit_client import register, write
from tests.e2e.test_accounts import signup_body
from tests.e2e.test_articles import Author, draft
from tests.e2e.test_sessions import account, bearer, login

ROUNDS = 8


async def person(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    tokens = await login(client, await account(client, unique_email))
    return Author(tokens["user"]["id"], bearer(tokens["access_token"]))


async def test_a_write_on_what_another_just_made_is_not_told_it_does_not_exist(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    author, reader = await person(client, unique_email), await person(client, unique_email)
    made = await client.post("/v1/collections", json={"name": "kept"}, headers=reader.auth)
    assert made.status_code == 201, made.text
    box = made.json()["collection"]["id"]
    answers: list[tuple[str, int]] = []
    for _ in range(ROUNDS):
        drafted = await draft(client, author)
        published = await client.post(f"/v1/articles/{drafted}/publish", headers=author.auth)
        assert published.status_code == 200, published.text
        comment = await client.post(
            f"/v1/articles/{drafted}/comments", json={"content": "first!"}, headers=reader.auth
        )
        answers.append(("comment", comment.status_code))
        other = await draft(client, author)
        assert (await client.post(f"/v1/articles/{other}/publish", headers=author.auth)).is_success
        like = await client.put(f"/v1/articles/{other}/like", headers=reader.auth)
        answers.append(("like", like.status_code))
        third = await draft(client, author)
        assert (await client.post(f"/v1/articles/{third}/publish", headers=author.auth)).is_success
        kept = await client.put(f"/v1/collections/{box}/articles/{third}", headers=reader.auth)
        answers.append(("collect", kept.status_code))
        signed_up = await client.post("/v1/users", json=signup_body(unique_email()))
        assert signed_up.status_code == 201, signed_up.text
        newcomer = signed_up.json()["user"]["id"]
        follow = await client.put(f"/v1/users/{newcomer}/follow", headers=reader.auth)
        answers.append(("follow", follow.status_code))
    assert [a for a in answers if a[1] not in (200, 201, 503)] == []
    # The projectors keep well within the read bound here: each waited, none gave up.
    assert [a for a in answers if a[1] == 503] == []


async def test_a_write_on_an_article_just_republished_is_not_told_it_does_not_exist(
    client: httpx.AsyncClient,
) -> None:
    """A withdraw then a republish, each answered: a comment (both APIs) or a favorite sent
    at once finds the article published, though the read model may still hold it
    withdrawn."""
    author, reader = await register(client), await register(client)
    slug = (await write(client, author))["slug"]
    mine = await client.get("/v1/me/articles", headers=author.auth)
    assert mine.status_code == 200, mine.text
    (article_id,) = [a["id"] for a in mine.json()["articles"]]
    acts: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
        "v1 comment": lambda: client.post(
            f"/v1/articles/{article_id}/comments", json={"content": "hi"}, headers=reader.auth
        ),
        "api favorite": lambda: client.post(f"/api/articles/{slug}/favorite", headers=reader.auth),
        "api unfavorite": lambda: client.delete(
            f"/api/articles/{slug}/favorite", headers=reader.auth
        ),
        "api comment": lambda: client.post(
            f"/api/articles/{slug}/comments", json={"comment": {"body": "hi"}}, headers=reader.auth
        ),
    }
    answers: list[tuple[str, int]] = []
    for _ in range(ROUNDS // 2):
        for name, act in acts.items():
            for step in ("withdraw", "publish"):
                done = await client.post(f"/v1/articles/{article_id}/{step}", headers=author.auth)
                assert done.status_code == 200, done.text
            answers.append((name, (await act()).status_code))
    assert [a for a in answers if a[1] not in (200, 201)] == []
