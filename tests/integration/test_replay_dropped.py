"""A dropped generation is gone for every ``bloghub replay`` command, as an operator runs
them: ``--status`` no longer lists it, ``activate`` and ``verify`` refuse it (exit 2)
rather than switch reads to tables that are no more, and a second ``drop`` is refused. This
holds for a generation 1 the registry has a row for (users) and for one it never had
(user_search, served by default until its first replay), which ``--status`` goes on
listing, and ``activate`` accepting, as long as it is not dropped."""

from __future__ import annotations

import re

import pytest

from bloghub.adapters.redis import make_redis
from bloghub.events.log import EventLog
from bloghub.events.topics import Family, topic_for
from bloghub.ops.lag import LagReader
from bloghub.projections.runner_config import group_id
from bloghub.projections.stats import applied_key, last_commit_key
from bloghub.settings import Settings
from tests.conftest import isolated, projecting
from tests.e2e.test_ops_cli import bloghub, refused, registry
from tests.support import append_registrations, applied, wait_until

ACCOUNTS = 40


def listed(status: str) -> set[tuple[str, str, str]]:
    """(projector, generation, registry state) of every row ``replay --status`` shows."""
    cells = [re.split(r"[\s│┃|]+", row.strip(" │┃|")) for row in status.splitlines()]
    return {(c[0], c[1], c[2]) for c in cells if len(c) >= 3 and c[1].isdigit()}


async def status_of(settings: Settings, name: str) -> set[tuple[str, str]]:
    ran = await bloghub(settings, "replay", "--status")
    assert ran.code == 0, ran.out
    return {(gen, state) for projector, gen, state in listed(ran.out) if projector == name}


@pytest.mark.parametrize("name", ["users", "user_search"])
async def test_a_dropped_generation_is_refused_and_no_longer_listed(run_id: str, name: str) -> None:
    async with isolated(run_id, f"rdrop{name[:5]}", generations_poll_s=0.5) as s:
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        try:
            await append_registrations(log, ACCOUNTS, tag=f"dropped-{name}-{run_id}")
        finally:
            await log.close()
        assert await status_of(s, name) == {("1", "active")}
        async with projecting(s, name):

            async def live_done() -> bool:
                return await applied(s, name, 1) >= ACCOUNTS

            await wait_until(live_done, timeout_s=60)
            ran = await bloghub(s, "replay", name)
            assert ran.code == 0, ran.out
        # The generation the replay retired is there to switch back to, until dropped.
        assert await status_of(s, name) == {("1", "retired"), ("2", "active")}
        before = await registry(s, name)

        group = group_id(s.prefix, name, 1)
        figures = [applied_key(s.prefix, group), last_commit_key(s.prefix, group)]
        redis = make_redis(s.redis_url.get_secret_value())
        try:
            assert await redis.exists(*figures) == 2, "generation 1 committed while live"
            ran = await bloghub(s, "replay", "drop", name, "1")
            assert ran.code == 0, ran.out
            assert f"{name}: generation 1 dropped" in ran.out, ran.out
            # The dashboard's figures of its consumer group go with it.
            assert await redis.exists(*figures) == 0
        finally:
            await redis.aclose()
        # Its consumer group is back at the log's start: a generation built again under
        # its number shows what it has left, not the dropped one's offsets.
        reader = LagReader(s.kafka_bootstrap, s.prefix)
        await reader.start()
        try:
            (rewound,) = await reader.read({group: [topic_for(s.prefix, Family.USERS)]})
        finally:
            await reader.close()
        assert rewound.lag == ACCOUNTS

        assert await status_of(s, name) == {("2", "active")}
        for command in (("activate", name, "1"), ("verify", name, "1", "2"), ("drop", name, "1")):
            refused(await bloghub(s, "replay", *command), f"{name} has no generation 1")
        # Reads stay with generation 2.
        assert await registry(s, name) == {g: st for g, st in before.items() if g != 1}
        assert await status_of(s, name) == {("2", "active")}
