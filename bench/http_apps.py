"""The two ASGI apps that ``bench/http.py`` serves with uvicorn, started the same way
(``uvicorn --factory bench.http_apps:NAME``), so the only difference is the app.

``bloghub``: the real app, built as an API worker of ``bloghub api`` builds it (settings and
logging from the environment, the heap settled once it is up). ``bare``: a plain Starlette
app answering the bodies bloghub gave for the same reads, pre-encoded (read from the JSON
file named by ``BENCH_BARE_BODIES``), and a POST that parses the same JSON body a draft
create gets and answers 201.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODIES_ENV = "BENCH_BARE_BODIES"


def bloghub() -> Starlette:
    from bloghub.cli import app_from_environment

    return app_from_environment()


def bare() -> Starlette:
    bodies = json.loads(Path(os.environ[BODIES_ENV]).read_text())
    detail = bodies["detail"].encode()
    profile = bodies["profile"].encode()
    ranking = bodies["ranking"].encode()
    created = b'{"article":{"id":"00000000-0000-0000-0000-000000000000","version":1}}'

    async def read_detail(request: Request) -> Response:
        return Response(detail, media_type="application/json")

    async def read_profile(request: Request) -> Response:
        return Response(profile, media_type="application/json")

    async def read_ranking(request: Request) -> Response:
        return Response(ranking, media_type="application/json")

    liked = b'{"article":{"id":"00000000-0000-0000-0000-000000000000","liked":true}}'

    async def like(request: Request) -> Response:
        return Response(liked, media_type="application/json")

    async def create(request: Request) -> Response:
        data = await request.json()
        if not isinstance(data, dict) or "title" not in data:
            return Response(b'{"error":{"code":"invalid"}}', status_code=422)
        return Response(created, status_code=201, media_type="application/json")

    return Starlette(
        routes=[
            Route("/detail", read_detail),
            Route("/profile", read_profile),
            Route("/ranking", read_ranking),
            Route("/drafts", create, methods=["POST"]),
            Route("/like", like, methods=["PUT"]),
        ]
    )


FLOOR_STEPS_ENV = "BENCH_FLOOR_STEPS"
FLOOR_STEPS = ("count", "target", "append", "remember")


def floor() -> Starlette:
    """A bare Starlette ``PUT /like`` that makes a like's round trips, one by one, through
    the clients bloghub uses, and nothing else: the rate limit's count with the session and
    own-write reads (one ``EVALSHA`` on the Redis wire), the target's read (one asyncpg
    statement from a kept pool), the append (aiokafka, idempotent, ``acks=all``, lingering
    as bloghub's event log is configured to, a real ``article.liked`` envelope to the
    deployment's topic, so the projectors get the same work) and the remembering (one more
    Redis round trip). ``BENCH_FLOOR_STEPS`` (comma separated, default all of
    ``FLOOR_STEPS``) names the steps made.

    And a ``POST /drafts`` that parses the body as bare's does, then makes a draft
    create's round trips the same way: the count, the append of a real ``article.drafted``
    with the body's title, content and tags, the remembering (a draft reads nothing)."""
    import contextlib
    from collections.abc import AsyncIterator

    import asyncpg
    from aiokafka import AIOKafkaProducer

    import bloghub.events.catalog  # noqa: F401  (registers every event type)
    from bloghub.adapters.redis.wire import Wire
    from bloghub.events.articles import ArticleDrafted
    from bloghub.events.base import Event, envelop
    from bloghub.events.codec import encode
    from bloghub.events.interactions import ArticleLiked
    from bloghub.events.topics import Family, topic_for
    from bloghub.ids import new_id_str
    from bloghub.settings import Settings

    settings = Settings()
    steps = set(os.environ.get(FLOOR_STEPS_ENV, ",".join(FLOOR_STEPS)).split(","))
    article, author, user = (os.environ[f"BENCH_FLOOR_{n}"] for n in ("ARTICLE", "AUTHOR", "USER"))
    script = "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1]) return {0, 0}"
    sha = hashlib.sha1(script.encode()).hexdigest()
    topic = topic_for(settings.prefix, Family.INTERACTIONS)
    drafts_topic = topic_for(settings.prefix, Family.ARTICLES)
    liked = b'{"article":{"id":"00000000-0000-0000-0000-000000000000","liked":true}}'
    created = b'{"article":{"id":"00000000-0000-0000-0000-000000000000","version":1}}'
    held: list[tuple[Wire, asyncpg.Pool, AIOKafkaProducer]] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        wire = Wire(settings.redis_url.get_secret_value())
        await wire.execute([("SCRIPT", "LOAD", script)])
        pool = await asyncpg.create_pool(settings.asyncpg_dsn, min_size=2, max_size=10)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=settings.producer_linger_ms,
        )
        await producer.start()
        held.append((wire, pool, producer))
        try:
            yield
        finally:
            await producer.stop()
            await pool.close()
            await wire.close()

    mine = f"{settings.prefix}:floor:{user}"

    async def count(wire: Wire) -> None:
        if "count" in steps:
            await wire.execute(
                [("EVALSHA", sha, 1, mine + ":rate", 1), ("HGET", mine, "user"), ("HGETALL", mine)]
            )

    async def append(producer: AIOKafkaProducer, event: Event, to: str, key: str) -> None:
        if "append" in steps:
            value, headers = encode(envelop(event, actor_id=user, request_id=None))
            await (await producer.send(to, value=value, key=key.encode(), headers=headers))

    async def remember(wire: Wire) -> None:
        if "remember" in steps:
            await wire.execute([("HSET", mine + ":pos", "t|0", 1), ("EXPIRE", mine + ":pos", 60)])

    async def like(request: Request) -> Response:
        wire, pool, producer = held[0]
        await count(wire)
        if "target" in steps:
            async with pool.acquire() as conn:
                await conn.fetch("SELECT $1::text, $2::text, true", article, author)
        event = ArticleLiked(article_id=article, author_id=author, user_id=user)
        await append(producer, event, topic, article)
        await remember(wire)
        return Response(liked, media_type="application/json")

    async def create(request: Request) -> Response:
        wire, _, producer = held[0]
        data = await request.json()
        if not isinstance(data, dict) or "title" not in data:
            return Response(b'{"error":{"code":"invalid"}}', status_code=422)
        await count(wire)
        drafted_id = new_id_str()
        event = ArticleDrafted(
            article_id=drafted_id,
            author_id=user,
            version=1,
            title=data["title"],
            content=data["content"],
            tags=data["tags"],
        )
        await append(producer, event, drafts_topic, drafted_id)
        await remember(wire)
        return Response(created, status_code=201, media_type="application/json")

    return Starlette(
        routes=[Route("/like", like, methods=["PUT"]), Route("/drafts", create, methods=["POST"])],
        lifespan=lifespan,
    )
