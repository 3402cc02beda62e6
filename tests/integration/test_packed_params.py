"""Bulk parameters sent packed (ids joined into one text, times as whole microseconds) come
back from PostgreSQL exactly as bound, in order; a value packing would split or lose is
refused before anything is written."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import column, insert, select, table, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.bulk import (
    MICROS,
    Packed,
    Unpackable,
    from_micros,
    micros,
    unnest_source,
)
from bloghub.adapters.postgres.engine import make_engine
from bloghub.events.base import envelop
from bloghub.events.interactions import ArticleLiked
from bloghub.events.log import EventLog
from bloghub.events.topics import DLQ, topic_for
from bloghub.ids import new_id_str
from bloghub.settings import Settings
from tests.conftest import pg, read_topic
from tests.support import wait_until

_IDS = Packed(UUID(as_uuid=False))
_ROWS = unnest_source({"id": _IDS, "at": MICROS})
_BACK = select(_ROWS.c.id, from_micros(_ROWS.c.at))


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(settings.sqlalchemy_url, pool_size=1)
    yield engine
    await engine.dispose()


async def _back(engine: AsyncEngine, ids: Sequence[str], times: Sequence[datetime]) -> list[Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(_BACK, {"id": ids, "at": micros(times)})
        return [(str(i), at) for i, at in rows]


@pytest.mark.parametrize("n", [0, 1, 3, 2000])
async def test_ids_and_times_come_back_exactly_and_in_order(engine: AsyncEngine, n: int) -> None:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    start = datetime(2026, 12, 4, 13, 0, 0, 123_457, tzinfo=UTC)
    times = [start + timedelta(microseconds=7919 * i) for i in range(n)]
    assert await _back(engine, ids, times) == list(zip(ids, times, strict=True))


async def test_times_before_the_epoch_and_in_other_zones_are_the_same_instants(
    engine: AsyncEngine,
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    times = [
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 12, 4, 21, 0, 0, 1, tzinfo=timezone(timedelta(hours=8))),
        datetime(2100, 1, 1, tzinfo=UTC),
    ]
    back = await _back(engine, ids, times)
    assert [at for _, at in back] == times  # aware datetimes compare as instants


@pytest.mark.parametrize(
    "ids",
    [
        [f"{uuid.uuid4()},{uuid.uuid4()}"],  # one value that would split into two ids
        [str(uuid.uuid4()), f"{uuid.uuid4()},{uuid.uuid4()}"],
        [""],  # an only value that would vanish
    ],
)
async def test_a_value_packing_would_split_or_lose_is_refused_before_anything_is_written(
    engine: AsyncEngine, ids: list[str]
) -> None:
    name = f"packed_{secrets.token_hex(4)}"
    target = table(name, column("id"), column("at"))
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {name} (id uuid NOT NULL, at timestamptz)"))
    try:
        async with engine.connect() as conn:
            with pytest.raises(sa_exc.StatementError) as refused:
                await conn.execute(
                    insert(target).from_select(["id", "at"], _BACK),
                    {"id": ids, "at": [0] * len(ids)},
                )
        assert isinstance(refused.value.orig, Unpackable)
        assert "holds a comma" in str(refused.value.orig)
        # No value appears in the message (it ends up in logs), only what is wrong.
        assert all(i not in str(refused.value) for i in ids if i)
        async with engine.connect() as conn:
            assert (await conn.execute(text(f"SELECT count(*) FROM {name}"))).scalar() == 0
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {name}"))


async def test_an_id_that_is_not_an_id_still_fails_the_cast(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        with pytest.raises(sa_exc.DBAPIError):
            await conn.execute(_BACK, {"id": ["not-an-id"], "at": [0]})


async def test_a_like_packing_would_split_is_dead_lettered_and_its_batch_lands(
    settings: Settings, event_log: EventLog, projectors: None
) -> None:
    """Through the running interactions projector: a like whose user id holds a comma (two
    ids, as packing would split it) is set aside with its error, as the store's refusal of
    a malformed id is, rather than halt its partition; the likes around it, in the same
    append and so most likely the same batch, are counted, and no like is made for either
    half of the bad id."""
    article, author = new_id_str(), new_id_str()
    fans = [new_id_str() for _ in range(2)]
    halves = (new_id_str(), new_id_str())
    events = [
        ArticleLiked(article_id=article, author_id=author, user_id=fans[0]),
        ArticleLiked(article_id=article, author_id=author, user_id=",".join(halves)),
        ArticleLiked(article_id=article, author_id=author, user_id=fans[1]),
    ]
    position = await event_log.append([envelop(e, actor_id=None, request_id=None) for e in events])
    (((_, partition), _),) = position.offsets.items()  # one article: one partition

    async def counted() -> bool:
        async with pg(settings) as conn:
            n = await conn.fetchval(
                "SELECT like_cnt FROM interactions_g1.article_stats WHERE article_id = $1",
                uuid.UUID(article),
            )
        return bool(n == len(fans))

    await wait_until(counted, timeout_s=30)
    async with pg(settings) as conn:
        likers = await conn.fetch(
            "SELECT user_id::text FROM interactions_g1.likes WHERE article_id = $1",
            uuid.UUID(article),
        )
    assert sorted(r[0] for r in likers) == sorted(fans)
    dead = await read_topic(settings, topic_for(settings.prefix, DLQ))
    letters = [
        dict(r.headers)
        for r in dead
        if dict(r.headers).get("projector") == b"interactions"
        and int(dict(r.headers)["origin_partition"]) == partition
        and halves[0].encode() in r.value
    ]
    assert len(letters) == 1
    assert b"holds a comma" in letters[0]["error"]
