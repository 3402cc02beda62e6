"""Withdrawn articles stay out of the served ranking until a result computed after the
withdraw replaces the one computed before it, however long the ranking job is away: marks
are pruned against the stored result's time, not the clock alone; and the marks of what
the stored result does not name still go after an hour, so a job away for days leaves
the sets no larger than an hour's marks and the result's own entries."""

from __future__ import annotations

import time

import orjson
from redis.asyncio import Redis

from bloghub.ids import new_id_str
from bloghub.ranking.hidden import KEEP_S, ErasedAuthors, HiddenArticles
from bloghub.ranking.lock import RankingKeys
from bloghub.ranking.served import HotRanking
from bloghub.settings import Settings

HOUR = 3600.0


async def test_a_withdraw_stays_hidden_while_the_result_is_older_than_it(
    redis: Redis, settings: Settings
) -> None:
    prefix = f"{settings.prefix}-hidden-{new_id_str()[-8:]}"
    keys = RankingKeys(prefix)
    withdrawn, other, later = new_id_str(), new_id_str(), new_id_str()
    now = time.time()
    # The last result was computed two hours ago, with the article in it; it was withdrawn
    # an hour and a half ago and no run has published since (the job stalled).
    entries = [{"id": a, "author": {"id": new_id_str()}} for a in (withdrawn, other)]
    await redis.hset(
        keys.result,
        mapping={"version": 1, "body": orjson.dumps(entries), "computed_at": repr(now - 2 * HOUR)},
    )
    await redis.zadd(keys.hidden, {withdrawn: now - 1.5 * HOUR})
    assert now - 1.5 * HOUR < now - KEEP_S  # older than the clock's keep alone
    marks = HiddenArticles(redis, prefix=prefix)
    served = HotRanking(redis, prefix=prefix, check_s=1.0)
    try:
        await marks.mark({later: False})  # any later withdraw prunes what it may
        assert await marks.members() == {withdrawn, later}
        await served.refresh()
        assert served.snapshot is not None
        assert [orjson.loads(e)["id"] for e in served.snapshot.entries] == [other]

        # A run begun now has left the withdrawn article out on its own: its mark can go.
        await redis.hset(keys.result, mapping={"version": 2, "computed_at": repr(time.time())})
        await marks.mark({new_id_str(): False})
        assert withdrawn not in await marks.members()
        assert later in await marks.members()
    finally:
        await redis.delete(keys.result, keys.hidden)


async def test_old_marks_of_what_the_stale_result_does_not_name_still_go(
    redis: Redis, settings: Settings
) -> None:
    prefix = f"{settings.prefix}-hidden-{new_id_str()[-8:]}"
    keys = RankingKeys(prefix)
    shown, gone, author, stranger = new_id_str(), new_id_str(), new_id_str(), new_id_str()
    now = time.time()
    entries = [{"id": shown, "author": {"id": author}}]
    await redis.hset(
        keys.result,
        mapping={"version": 1, "body": orjson.dumps(entries), "computed_at": repr(now - 48 * HOUR)},
    )
    await redis.zadd(keys.hidden, {shown: now - 30 * HOUR, gone: now - 30 * HOUR})
    await redis.zadd(keys.erased, {author: now - 30 * HOUR, stranger: now - 30 * HOUR})
    try:
        await HiddenArticles(redis, prefix=prefix).mark({new_id_str(): False})
        hidden = await HiddenArticles(redis, prefix=prefix).members()
        assert shown in hidden  # the stored result names it: kept, however old
        assert gone not in hidden  # named by no result that can still be served
        await ErasedAuthors(redis, prefix=prefix).mark([new_id_str()])
        erased = await ErasedAuthors(redis, prefix=prefix).members()
        assert author in erased
        assert stranger not in erased
    finally:
        await redis.delete(keys.result, keys.hidden, keys.erased)
