"""Anonymous reads are limited in each API process without Redis; writes and authenticated
requests keep one window shared by every process (in Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import subprocess
from collections.abc import AsyncIterator

import httpx
from pydantic import SecretStr

from bloghub.settings import Settings
from tests.conftest import serve

LIMIT = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def private_redis() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        "redis-server",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            await asyncio.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


def _from(ip: str) -> dict[str, str]:
    return {"x-forwarded-for": ip, "user-agent": "bloghub-tests/1"}


def _some_ip() -> str:
    return f"198.51.100.{secrets.randbelow(250) + 1}"


async def test_anonymous_reads_are_limited_even_while_redis_is_down(settings: Settings) -> None:
    async with private_redis() as (url, redis):
        limited = settings.model_copy(
            update={
                "redis_url": SecretStr(url),
                "rate_ip_per_minute": LIMIT,
                "cache_enabled": False,
            }
        )
        async with serve(limited) as live, httpx.AsyncClient(base_url=live.url) as client:
            redis.terminate()
            await redis.wait()
            ip = _some_ip()
            answers = [
                await client.get("/v1/users/not-a-user", headers=_from(ip))
                for _ in range(LIMIT + 1)
            ]
    assert [a.status_code for a in answers] == [404] * LIMIT + [429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert int(answers[-1].headers["retry-after"]) >= 1


async def test_writes_share_one_window_across_processes(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_ip_per_minute": LIMIT})
    async with (
        serve(limited) as first,
        serve(limited) as second,
        httpx.AsyncClient() as client,
    ):
        ip = _some_ip()
        answers = [
            await client.post(f"{server.url}/v1/users", json={}, headers=_from(ip))
            for server in [first, second] * 3
        ]
    statuses = [a.status_code for a in answers]
    # Each process alone has seen only three of them: the refusal comes from the window the
    # two share.
    assert statuses == [422] * LIMIT + [429], statuses
