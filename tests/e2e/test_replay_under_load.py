"""``bloghub replay --all`` while clients write and read through two API processes: no
request fails, no read waits past its bound or misses the write it waited for, both API
processes and the projector process move to the new generations without a restart (the
old ones can then be dropped under them), and the new generations verify equal to a
fresh build."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bloghub.events.log import EventLog
from bloghub.processes import stop_process
from bloghub.projections.catalog import PROJECTORS
from bloghub.settings import Settings
from tests.conftest import isolated, pg
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.loopback import free_port
from tests.support import (
    ArticleBook,
    append_events,
    append_registrations,
    applied,
    article_history,
    wait_until,
)

USERS, ARTICLE_EVENTS = 5_000, 1_000
CLIENTS = 4


def environment(settings: Settings, **more: str) -> dict[str, str]:
    """What every process of this test shares: the log, the store, the fast beats."""
    return {
        **os.environ,
        "BLOGHUB_MODE": "test",
        "BLOGHUB_PREFIX": settings.prefix,
        "BLOGHUB_DATABASE_URL": settings.sqlalchemy_url,
        "BLOGHUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "BLOGHUB_GENERATIONS_POLL_S": "0.5",
        "BLOGHUB_REPLAY_CAUGHT_UP_EVENTS": "300",
        "BLOGHUB_REPLAY_HANDOVER_S": "60",
        # The bound a read waits for the write it names (this machine is shared and busy).
        "BLOGHUB_READ_WAIT_S": "10",
        "BLOGHUB_RATE_IP_PER_MINUTE": "1000000",
        "BLOGHUB_RATE_USER_PER_MINUTE": "1000000",
        "BLOGHUB_LOGIN_FAILURES_PER_IP": "1000000",
        **more,
    }


@contextlib.contextmanager
def process(env: dict[str, str], log_file: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    with log_file.open("ab") as sink:
        child = subprocess.Popen(
            [sys.executable, "-m", "bloghub.cli", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield child
    finally:
        stop_process(child, grace_s=30)


@dataclass
class Load:
    """Writers and readers through both API processes, with what each request got."""

    urls: list[str]
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    reads: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, n: int) -> None:
        writer, reader = self.urls[n % 2], self.urls[(n + 1) % 2]
        # Idle connections are let go before the server's keep-alive ends (5 s), so no
        # request is sent down a connection the server is closing.
        limits = httpx.Limits(keepalive_expiry=2)
        async with (
            httpx.AsyncClient(base_url=writer, timeout=60, limits=limits) as w,
            httpx.AsyncClient(base_url=reader, timeout=60, limits=limits) as r,
        ):
            auth = await self._account(w)
            while not self.stop.is_set():
                await self._write_then_read(w, r, auth)

    async def _account(self, w: httpx.AsyncClient) -> dict[str, str]:
        email = f"load-{secrets.token_hex(6)}@example.com"
        self._note(await w.post("/v1/users", json=signup_body(email)), "signup")
        login = await w.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        self._note(login, "login")
        return {"authorization": f"Bearer {login.json()['access_token']}"}

    async def _write_then_read(
        self, w: httpx.AsyncClient, r: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        title = f"t-{secrets.token_hex(4)}"
        body = {"title": title, "content": "x", "tags": ["load"]}
        drafted = await w.post("/v1/articles", json=body, headers=auth)
        if not self._note(drafted, "draft"):
            return
        article_id = drafted.json()["article"]["id"]
        published = await w.post(f"/v1/articles/{article_id}/publish", headers=auth)
        if not self._note(published, "publish"):
            return
        # The other API process, told to wait for the publish: it must see it.
        after = {"bloghub-after": published.headers["bloghub-position"]}
        read = await r.get(f"/v1/articles/{article_id}", headers=after)
        self.reads += 1
        if not self._note(read, "read"):
            return
        if read.headers.get("bloghub-stale") == "true":
            self.problems.append(f"read of {article_id} ran out of its bound")
        elif read.json()["article"]["title"] != title:
            self.problems.append(f"read of {article_id} missed its write")
        self._note(await r.get("/v1/articles", headers=auth), "list")

    def _note(self, response: httpx.Response, what: str) -> bool:
        self.statuses[response.status_code] += 1
        if response.status_code >= 400:
            self.problems.append(f"{what}: {response.status_code} {response.text[:200]}")
        return response.status_code < 400


@contextlib.asynccontextmanager
async def loading(load: Load) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(load.client(n)) for n in range(CLIENTS)]
    try:
        yield
    finally:
        load.stop.set()
        await asyncio.gather(*tasks)


async def active(settings: Settings) -> dict[str, int]:
    async with pg(settings) as conn:
        rows = await conn.fetch(
            "SELECT projector, generation FROM projector_generations WHERE state = 'active'"
        )
    return {r["projector"]: r["generation"] for r in rows}


async def run(env: dict[str, str], log_file: Path, *args: str) -> int:
    with log_file.open("ab") as sink:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bloghub.cli", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=400,
            check=False,
        )
    return done.returncode


async def test_replay_all_under_load_switches_every_process(run_id: str, tmp_path: Path) -> None:
    async with isolated(run_id, "swap") as s:
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        try:
            await append_registrations(log, USERS, tag=f"swap-{run_id}")
            history = article_history(
                ArticleBook(), random.Random(7), events=ARTICLE_EVENTS, tags=list("abcdefg")
            )
            await append_events(log, history)
        finally:
            await log.close()
        env = environment(s)
        ports = [free_port(), free_port()]
        logs = tmp_path / "processes.log"
        with (
            process(env, logs, "project"),
            process({**env, "BLOGHUB_API_PORT": str(ports[0])}, logs, "api", "--workers", "1"),
            process({**env, "BLOGHUB_API_PORT": str(ports[1])}, logs, "api", "--workers", "1"),
        ):
            load = Load([f"http://127.0.0.1:{p}" for p in ports])
            await _until_serving(load.urls, s)
            async with loading(load):
                replayed = await run(env, tmp_path / "replay.log", "replay", "--all")
                assert replayed == 0, (tmp_path / "replay.log").read_text()[-3000:]
                assert await active(s) == dict.fromkeys(PROJECTORS, 2)
                # Every process reads the new generations within a poll, and the projector
                # process drains the old ones once a request pinned to them can no longer
                # be waiting (the read bound and a poll): then they can go from under
                # them, and the load goes on without a failed request.
                await asyncio.sleep(10 + 2 * 0.5 + 1)
                for name in PROJECTORS:
                    assert await run(env, tmp_path / "drop.log", "replay", "drop", name, "1") == 0
                reads_before = load.reads
                await wait_until(lambda: _more_reads(load, reads_before), timeout_s=60)
            assert load.problems == [], load.problems[:10]
            assert load.reads > 0
            # The projector process took the new generations over: they keep up on their own.
            ends = {name: await applied(s, name, 2) for name in PROJECTORS}
            fresh = await run(env, tmp_path / "fresh.log", "replay", "--all", "--no-swap")
            assert fresh == 0, (tmp_path / "fresh.log").read_text()[-3000:]
            for name in PROJECTORS:
                built = await applied(s, name, 3)
                assert built >= ends[name]

                async def live_there(name: str = name, built: int = built) -> bool:
                    return await applied(s, name, 2) >= built

                await wait_until(live_there, timeout_s=60)
                verify = ("replay", "verify", name, "2", "3")
                verified = await run(env, tmp_path / "verify.log", *verify)
                assert verified == 0, (tmp_path / "verify.log").read_text()[-3000:]


async def _more_reads(load: Load, before: int) -> bool:
    return load.reads >= before + 2 * CLIENTS


async def _until_serving(urls: list[str], settings: Settings) -> None:
    async def ready() -> bool:
        for url in urls:
            try:
                async with httpx.AsyncClient(base_url=url, timeout=5) as c:
                    if (await c.get("/readyz")).status_code != 200:
                        return False
            except httpx.HTTPError:
                return False
        # The live read models first catch up with what the log already holds.
        return (
            await applied(settings, "users", 1) >= USERS
            and await applied(settings, "articles", 1) >= ARTICLE_EVENTS
        )

    await wait_until(ready, timeout_s=180)
