"""Kafka's copy of a projector's checkpoints (what standard lag tools and the ops dashboard
read) says where the projector starts as soon as it is assigned its partitions, not at the
partition's next batch: a partition that stays quiet (after a replay's switch, whose
builder committed nothing there; or a generation dropped and built again under its number,
whose group kept the old one's offsets) would show lag it has not, or none it has."""

from __future__ import annotations

from aiokafka import TopicPartition

from bloghub.events.base import envelop
from bloghub.events.log import EventLog
from bloghub.events.topics import Family, topic_for
from bloghub.events.users import UserRegisteredByPhone
from bloghub.ids import new_id_str
from bloghub.ops.lag import GroupLag, LagReader
from bloghub.projections.runner_config import group_id
from tests.conftest import isolated, projecting
from tests.integration.test_lag import commit
from tests.support import passed, wait_until


async def test_a_projector_puts_kafka_s_copy_right_when_it_is_assigned(run_id: str) -> None:
    async with isolated(run_id, "placed") as s:
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        try:
            events = [
                UserRegisteredByPhone(user_id=new_id_str(), phone=f"+8613{i:09d}")
                for i in range(12)
            ]
            position = await log.append(
                [envelop(e, actor_id=None, request_id=None) for e in events]
            )
        finally:
            await log.close()
        async with projecting(s, "users"):

            async def applied() -> bool:
                return await passed(s, "users", position)

            await wait_until(applied, timeout_s=60)

        topic, group = topic_for(s.prefix, Family.USERS), group_id(s.prefix, "users", 1)
        # Kafka's copy goes wrong while no member runs: as a dropped generation's group
        # that the next build of its number inherits.
        everywhere = {TopicPartition(topic, p): 0 for p in range(s.topic_partitions)}
        await commit(s, group, everywhere)
        reader = LagReader(s.kafka_bootstrap, s.prefix)
        await reader.start()
        try:
            (stale,) = await reader.read({group: [topic]})
            assert stale.lag == len(events)

            seen: list[GroupLag] = []

            async def copied() -> bool:
                seen[:] = await reader.read({group: [topic]})
                return seen[0].lag == 0

            # Started again with nothing new to apply: no batch comes to commit after.
            async with projecting(s, "users"):
                await wait_until(copied, timeout_s=30)
            assert all(p.committed == p.end_offset for p in seen[0].partitions), seen
        finally:
            await reader.close()
