"""A projector killed with SIGKILL mid-batch and restarted ends with exactly the state a
fresh replay of the log gives: nothing lost, nothing applied twice."""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg

from bloghub.events.log import EventLog
from bloghub.projections.users import UsersProjector
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.support import (
    append_registrations,
    applied,
    projector_process,
    replay_generation,
    wait_until,
)

EVENTS = 20_000


async def _rows(settings: Settings, schema: str) -> list[tuple[str, str, str, object]]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch(
            f'SELECT id::text, email, password_hash, created_at FROM "{schema}".users ORDER BY id'
        )
        return [tuple(r) for r in rows]
    finally:
        await conn.close()


async def test_sigkill_mid_batch_then_restart_equals_replay(run_id: str, tmp_path: Path) -> None:
    async with isolated(run_id, "kill") as settings:
        log = EventLog.from_settings(settings, timeout_s=10)
        await log.start()
        await append_registrations(log, EVENTS, tag="kill")
        await log.close()

        first = projector_process(settings, "users", log_file=tmp_path / "p.log", batch=300)

        async def started() -> bool:
            return await applied(settings, "users") > 1000

        await wait_until(started, timeout_s=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        at_kill = await applied(settings, "users")
        assert 0 < at_kill < EVENTS, "the kill must land while events remain"

        second = projector_process(settings, "users", log_file=tmp_path / "p.log")
        try:

            async def finished() -> bool:
                return await applied(settings, "users") >= EVENTS

            await wait_until(finished, timeout_s=120)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0, "SIGTERM drains and exits cleanly"

        live = await _rows(settings, "users_g1")
        assert len(live) == EVENTS
        assert len({email for _, email, _, _ in live}) == EVENTS

        await replay_generation(settings, UsersProjector, 2, until=EVENTS)
        assert await _rows(settings, "users_g2") == live
