"""``GET /api/articles?favorited=`` for someone who likes more articles than one database
statement takes parameters (asyncpg: 32767) answers like for anyone else, instead of a
503 that never goes away."""

from __future__ import annotations

import uuid

import httpx
import pytest

from bloghub.adapters.postgres.generations import schema_name
from bloghub.commands.users import USERNAME, username_key
from bloghub.settings import Settings
from tests.conftest import pg
from tests.e2e.conduit_client import Conduit, register, unique_name, write_at

pytestmark = pytest.mark.usefixtures("live_api")

MORE_THAN_PARAMETERS = 33_000


async def like_many(settings: Settings, fan: Conduit) -> tuple[str, list[str]]:
    """Likes of ``fan`` for as many articles no longer there (as a deleted article's likes
    stay), written straight into the active interactions read model; where, and which."""
    gone = [str(uuid.uuid4()) for _ in range(MORE_THAN_PARAMETERS)]
    async with pg(settings) as conn:
        fan_id = await conn.fetchval(
            "SELECT owner_id FROM public.reservations WHERE kind = $1 AND value = $2",
            USERNAME,
            username_key(fan.username),
        )
        generation = await conn.fetchval(
            "SELECT generation FROM public.projector_generations"
            " WHERE projector = 'interactions' AND state = 'active'"
        )
        schema = schema_name("interactions", generation)
        await conn.execute(
            f'INSERT INTO "{schema}".likes (article_id, user_id, liked_at)'
            " SELECT id, $1::uuid, now() FROM unnest($2::uuid[]) AS id",
            fan_id,
            gone,
        )
    return schema, gone


async def unlike(settings: Settings, schema: str, gone: list[str]) -> None:
    async with pg(settings) as conn:
        await conn.execute(f'DELETE FROM "{schema}".likes WHERE article_id = ANY($1::uuid[])', gone)


async def test_a_fan_of_very_many_articles_gets_their_page_and_count(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    jake, fan = await register(client), await register(client)
    first, _ = await write_at(client, jake, unique_name("First "))
    await write_at(client, jake, unique_name("Not liked "))
    second, after = await write_at(client, jake, unique_name("Second "))
    for made in (first, second):
        liked = await client.post(
            f"/api/articles/{made['slug']}/favorite", headers={**fan.auth, **after}
        )
        assert liked.status_code == 200, liked.text
    schema, gone = await like_many(settings, fan)
    try:
        # The fan's reads wait for their own favorites.
        listed = await client.get(
            "/api/articles", params={"favorited": fan.username}, headers=fan.auth
        )
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["articlesCount"] == 2
        assert [(a["slug"], a["favorited"], a["favoritesCount"]) for a in body["articles"]] == [
            (second["slug"], True, 1),
            (first["slug"], True, 1),
        ]
        paged = await client.get(
            "/api/articles",
            params={"favorited": fan.username, "offset": 1, "limit": 1},
            headers=fan.auth,
        )
        assert paged.status_code == 200, paged.text
        assert [a["slug"] for a in paged.json()["articles"]] == [first["slug"]]
        assert paged.json()["articlesCount"] == 2
    finally:
        await unlike(settings, schema, gone)
