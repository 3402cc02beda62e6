"""``bloghub replay`` killed halfway (SIGKILL) and run again resumes the same generation
from its own checkpoints, and ends identical to the live read model; activation of the
half-built generation is refused; the dashboard shows the replay with its progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bloghub.events.log import EventLog
from bloghub.ops.generations_admin import ReplayRefused, drop_generation
from bloghub.ops.replay import activate_checked, building_stores, close_stores
from bloghub.ops.verify import verify_generations
from bloghub.settings import Settings
from tests.conftest import isolated, pg, projecting, serve
from tests.e2e.test_ops import operator
from tests.support import append_registrations, applied, projector_env, wait_until

EVENTS = 40_000


def replay_process(
    settings: Settings, *args: str, log_file: Path, batch: int = 50
) -> subprocess.Popen[bytes]:
    """``bloghub replay …`` as an operator runs it, against ``settings``' log and store."""
    env = {
        **projector_env(settings, batch=batch),
        "BLOGHUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "BLOGHUB_APPLY_CONCURRENCY": "1",
    }
    with log_file.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "bloghub.cli", "replay", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def registry(settings: Settings, name: str) -> dict[int, str]:
    async with pg(settings) as conn:
        rows = await conn.fetch(
            "SELECT generation, state FROM projector_generations WHERE projector = $1", name
        )
    return {r["generation"]: r["state"] for r in rows}


async def test_a_killed_replay_resumes_and_ends_identical(run_id: str, tmp_path: Path) -> None:
    async with isolated(run_id, "resume") as s:
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        try:
            await append_registrations(log, EVENTS, tag=f"resume-{run_id}")
        finally:
            await log.close()
        async with projecting(s, "users"):

            async def live_done() -> bool:
                return await applied(s, "users", 1) >= EVENTS

            await wait_until(live_done, timeout_s=120)
        first = replay_process(s, "users", "--no-swap", log_file=tmp_path / "first.log")
        try:
            async with (
                serve(s) as api,
                httpx.AsyncClient(base_url=api.url, timeout=60) as client,
            ):
                # The dashboard's readers connect at the first request.
                assert (await client.get("/ops/api/lag", headers=operator(s))).status_code == 200

                async def shown_under_way() -> bool:
                    # The replay publishes its figures once a second: stopped before its
                    # first batch's were, the dashboard would rightly show none done.
                    answer = await client.get("/ops/api/lag", headers=operator(s))
                    shown = answer.json()["replays"]
                    return bool(shown) and (shown[0]["done"] or 0) > 0

                await wait_until(shown_under_way, timeout_s=120)
                # Stopped where it stands (anywhere in a batch, as a kill finds it): the
                # replay applies tens of thousands of events a second, and would finish
                # while the dashboard answers. SIGKILL then ends it from there.
                os.kill(first.pid, signal.SIGSTOP)
                # The dashboard shows the replay with its progress while it is unfinished.
                snapshot = await client.get("/ops/api/lag", headers=operator(s))
                replays = snapshot.json()["replays"]
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        assert [(r["projector"], r["generation"]) for r in replays] == [("users", 2)]
        assert set(replays[0]) == {
            "projector",
            "generation",
            "state",
            "done",
            "total",
            "events_per_s",
            "eta_s",
        }
        assert replays[0]["total"] == EVENTS
        assert 0 < replays[0]["done"] < EVENTS

        at_kill = await applied(s, "users", 2)
        assert 0 < at_kill < EVENTS, "killed halfway"
        with pytest.raises(ReplayRefused, match="behind the log"):
            await activate_checked(s, "users", 2)

        second = replay_process(s, "users", "--no-swap", log_file=tmp_path / "second.log")
        assert await _exit_code(second) == 0, (tmp_path / "second.log").read_text()
        # The same generation, finished from where it stood: no third one was started.
        assert await registry(s, "users") == {1: "active", 2: "built"}
        assert await applied(s, "users", 2) == EVENTS
        stores = building_stores(s, pool_size=1)
        try:
            assert await verify_generations(stores, "users", 1, 2) == []
        finally:
            await close_stores(stores)
        await activate_checked(s, "users", 2)  # caught up: allowed
        assert await registry(s, "users") == {1: "retired", 2: "active"}
        stores = building_stores(s, pool_size=1)
        try:
            with pytest.raises(ReplayRefused, match="serves reads"):
                await drop_generation(stores, "users", 2)
            await drop_generation(stores, "users", 1)
        finally:
            await close_stores(stores)
        assert await registry(s, "users") == {2: "active"}
        async with pg(s) as conn:
            assert await conn.fetchval("SELECT to_regnamespace('users_g1')") is None


async def _exit_code(process: subprocess.Popen[bytes]) -> int:
    async def ended() -> bool:
        return process.poll() is not None

    try:
        await wait_until(ended, timeout_s=180)
    finally:
        if process.poll() is None:
            process.kill()
    return process.wait()
