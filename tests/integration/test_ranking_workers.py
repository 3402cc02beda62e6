"""Two ``bloghub rank`` processes on one deployment: one computes each period; SIGKILL it
and the other takes the lock over once the dead holder's lock runs out."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path

from redis.asyncio import Redis

from bloghub.adapters.redis import make_redis
from bloghub.ranking.lock import RankingKeys
from bloghub.settings import Settings
from tests.ranking_rows import add_article, ranking_store
from tests.support import projector_env, wait_until

TTL_S = 3.0
EVERY_S = 1.0


def rank_process(settings: Settings, log_file: Path) -> subprocess.Popen[bytes]:
    env = projector_env(settings, batch=500) | {
        "BLOGHUB_RANKING_LOCK_TTL_S": str(TTL_S),
        "BLOGHUB_RANKING_EVERY_S": str(EVERY_S),
    }
    with log_file.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "bloghub.cli", "rank"], env=env, stdout=sink, stderr=sink
        )


class Results:
    """Every version of the result seen, with who wrote it and when it was computed."""

    def __init__(self, redis: Redis, keys: RankingKeys) -> None:
        self.redis = redis
        self.keys = keys
        self.seen: dict[int, tuple[str, float]] = {}

    async def look(self) -> None:
        version, holder, at = await self.redis.hmget(
            self.keys.result, ["version", "holder", "computed_at"]
        )
        if version is not None and holder is not None and at is not None:
            self.seen[int(version)] = (
                holder.decode() if isinstance(holder, bytes) else holder,
                float(at),
            )

    def holders(self, versions: range) -> set[str]:
        return {self.seen[v][0] for v in versions if v in self.seen}


async def test_one_worker_computes_per_period_and_the_other_takes_over_when_killed(
    run_id: str, tmp_path: Path
) -> None:
    async with ranking_store(run_id, "rank_two") as settings:
        await add_article(settings, hours_ago=1, likes=3)
        redis = make_redis(settings.redis_url.get_secret_value())
        results = Results(redis, RankingKeys(settings.prefix))
        workers = [rank_process(settings, tmp_path / f"rank{i}.log") for i in range(2)]
        try:

            async def computed(count: int) -> bool:
                await results.look()
                return len(results.seen) >= count

            await wait_until(lambda: computed(4), timeout_s=60)
            first = range(1, max(results.seen) + 1)
            (holder,) = results.holders(first)  # both run, one computes
            times = sorted(at for _, at in results.seen.values())
            assert all(b - a >= EVERY_S - 1e-3 for a, b in itertools.pairwise(times))

            pid = int(holder.rsplit(":", 1)[1])
            (victim,) = [w for w in workers if w.pid == pid]
            (other,) = [w for w in workers if w.pid != pid]
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            killed_at, last = time.time(), max(results.seen)

            async def taken_over() -> bool:
                await results.look()
                return any(
                    v > last and h.endswith(f":{other.pid}") for v, (h, _) in results.seen.items()
                )

            # The dead holder's lock runs out within one TTL of its last renewal; the
            # standby asks every quarter TTL and computes at once (the period is past).
            await wait_until(taken_over, timeout_s=4 * TTL_S)
            after = min(v for v in results.seen if v > last)
            assert results.seen[after][0].endswith(f":{other.pid}")
            print(f"takeover {results.seen[after][1] - killed_at:.2f} s after the kill")
            target = len(results.seen) + 2
            await wait_until(lambda: computed(target), timeout_s=60)
            assert results.holders(range(after, max(results.seen) + 1)) == {results.seen[after][0]}
        finally:
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
                    w.wait(timeout=20)
            await redis.aclose()
