"""Anonymous reads are limited in each API process without Redis; writes and authenticated
requests keep one window shared by every process (in Redis)."""

from __future__ import annotations

import secrets

import httpx
from pydantic import SecretStr

from bloghub.settings import Settings
from tests.conftest import serve
from tests.private_redis import private_redis

LIMIT = 5


def _from(ip: str) -> dict[str, str]:
    return {"x-forwarded-for": ip, "user-agent": "bloghub-tests/1"}


def _some_ip() -> str:
    return f"198.51.100.{secrets.randbelow(250) + 1}"


async def test_anonymous_reads_are_limited_even_while_redis_is_down(settings: Settings) -> None:
    async with private_redis() as own_redis:
        limited = settings.model_copy(
            update={
                "redis_url": SecretStr(own_redis.url),
                "rate_ip_per_minute": LIMIT,
                "cache_enabled": False,
            }
        )
        async with serve(limited) as live, httpx.AsyncClient(base_url=live.url) as client:
            await own_redis.stop()
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


async def test_a_realworld_client_is_refused_in_realworlds_shape(settings: Settings) -> None:
    # A Conduit front end reads "errors": the limit's 429 under /api speaks its shape.
    limited = settings.model_copy(update={"rate_ip_per_minute": LIMIT})
    async with serve(limited) as live, httpx.AsyncClient(base_url=live.url) as client:
        ip = _some_ip()
        answers = [
            await client.get("/api/profiles/nobody-at-all", headers=_from(ip))
            for _ in range(LIMIT + 1)
        ]
    assert [a.status_code for a in answers] == [404] * LIMIT + [429]
    (message,) = answers[-1].json()["errors"]["request"]
    assert message.startswith("too many requests")
    assert int(answers[-1].headers["retry-after"]) >= 1
