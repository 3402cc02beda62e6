"""``bloghub run --projectors 2`` (what ``make run`` starts on two cores or more): two
``bloghub project`` processes run every projector, their consumer groups split the
partitions between them, both apply, what the API takes is projected as with one, and
both drain on a stop."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import httpx
from redis.asyncio import Redis

from bloghub.events.topics import partition_of
from bloghub.processes import stop_process
from bloghub.projections.catalog import PROJECTORS
from bloghub.projections.heartbeat import read_heartbeats
from bloghub.projections.runner_config import group_id
from tests.conftest import isolated
from tests.e2e.test_articles import Author, draft
from tests.e2e.test_run_banner import run_env, start_run
from tests.e2e.test_sessions import account, bearer, login
from tests.loopback import free_port
from tests.support import group_settled, wait_until


async def instances(redis: Redis, prefix: str) -> dict[str, list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = defaultdict(list)
    for beat in await read_heartbeats(redis, prefix):
        found[str(beat["projector"])].append(beat)
    return found


async def test_two_projector_processes_split_the_work_and_project_everything(
    run_id: str, tmp_path: Path, redis: Redis, unique_email: Callable[[], str]
) -> None:
    port = free_port()
    log_file = tmp_path / "run.log"
    async with (
        isolated(run_id, "runproj") as own,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as client,
    ):
        env = run_env(own, port)
        process = start_run(env, log_file, "--projectors", "2")
        try:

            async def both_running() -> bool:
                found = await instances(redis, own.prefix)
                return all(len({b["pid"] for b in found[name]}) == 2 for name in PROJECTORS)

            await wait_until(both_running, timeout_s=120)
            # A heartbeat beats from its process's start; the groups split once the second
            # process's consumers have joined.
            groups = [group_id(own.prefix, name, 1) for name in PROJECTORS]

            async def every_group_of_two() -> bool:
                return all([await group_settled(own, g, 2) for g in groups])

            await wait_until(every_group_of_two, timeout_s=120)
            assert "2 projector process(es)" in log_file.read_text(errors="replace")

            author_tokens = await login(client, await account(client, unique_email))
            author = Author(author_tokens["user"]["id"], bearer(author_tokens["access_token"]))
            fan_tokens = await login(client, await account(client, unique_email))
            fan = bearer(fan_tokens["access_token"])
            # Published articles on every partition, each liked once: whichever process
            # holds a partition, its likes are counted.
            on: dict[int, str] = {}
            articles: dict[str, str] = {}  # id: the position of its publish
            while len(on) < own.topic_partitions:
                article_id = await draft(client, author)
                publish = await client.post(
                    f"/v1/articles/{article_id}/publish", headers=author.auth
                )
                assert publish.status_code == 200, publish.text
                on.setdefault(partition_of(article_id, own.topic_partitions), article_id)
                articles[article_id] = publish.headers["bloghub-position"]
            for article_id, after in articles.items():
                answer = await client.put(
                    f"/v1/articles/{article_id}/like", headers={**fan, "bloghub-after": after}
                )
                assert answer.status_code == 200, answer.text

            async def counted() -> bool:
                for article_id in articles:
                    answer = await client.get(f"/v1/articles/{article_id}")
                    if answer.status_code != 200 or answer.json()["article"]["like_cnt"] != 1:
                        return False
                return True

            await wait_until(counted, timeout_s=60)

            async def both_applied() -> bool:
                found = await instances(redis, own.prefix)
                beats = found["interactions"]
                return len(beats) == 2 and all(int(str(b["applied"])) > 0 for b in beats)

            try:
                await wait_until(both_applied, timeout_s=60)
            except TimeoutError:
                raise AssertionError(await instances(redis, own.prefix)) from None
        finally:
            stop_process(process, grace_s=60)
        # Both projector processes drained and left: their heartbeats deleted and their
        # groups empty well before a killed one's heartbeat would expire (its TTL) or its
        # membership time out.
        assert own.heartbeat_ttl_s >= 15

        async def all_left() -> bool:
            if await instances(redis, own.prefix) != {}:
                return False
            return all([await group_settled(own, g, 0) for g in groups])

        await wait_until(all_left, timeout_s=10)
