"""What a projector tells the ops dashboard after its commits reaches Redis whole: the first
commit at once, a stream of them gathered into a write per interval, and a stopping runner's
last ones without waiting the interval out."""

from __future__ import annotations

import asyncio
import secrets
import time

from redis.asyncio import Redis

from bloghub.projections.stats import CommitStats, applied_key, last_commit_key
from bloghub.settings import Settings


async def _figures(redis: Redis, prefix: str, group: str) -> tuple[int, float]:
    applied, last = await redis.mget(applied_key(prefix, group), last_commit_key(prefix, group))
    return int(applied or 0), float(last or 0)


async def test_commits_reach_the_dashboard_whole_and_in_time(
    redis: Redis, settings: Settings
) -> None:
    group = f"stats-{secrets.token_hex(3)}"
    stats = CommitStats(redis, prefix=settings.prefix, group=group)
    stats.INTERVAL_S = 5.0  # longer than the test: only the first and a flush write
    stats.committed(5)
    await asyncio.sleep(0.1)
    assert (await _figures(redis, settings.prefix, group))[0] == 5  # the first goes at once

    for _ in range(20):  # a batch every 10 ms: gathered, not written one by one
        stats.committed(2)
        await asyncio.sleep(0.01)
    applied, _ = await _figures(redis, settings.prefix, group)
    assert applied == 5, "commits were written one by one, not gathered"
    last_commit = time.time()
    stats.committed(1)
    await stats.flush()  # a stopping runner: no interval waited out, nothing lost
    applied, last = await _figures(redis, settings.prefix, group)
    assert applied == 5 + 20 * 2 + 1
    assert last >= last_commit
