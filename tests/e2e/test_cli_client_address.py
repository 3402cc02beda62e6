"""``bloghub api`` and ``bloghub run``, as an operator starts them, take the client's
address from X-Forwarded-For exactly when ``BLOGHUB_TRUSTED_PROXIES`` trusts the peer:
an attacker's wrong passwords lock the attacker's address, and the owner, forwarded by
the same proxy from another address, logs in at once."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bloghub.processes import stop_process
from bloghub.settings import Settings
from tests.conftest import isolated, projecting
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.loopback import free_port
from tests.support import wait_until


@contextlib.contextmanager
def bloghub(command: str, settings: Settings, port: int, log_file: Path) -> Iterator[None]:
    env = {
        **os.environ,
        "BLOGHUB_MODE": "test",
        "BLOGHUB_PREFIX": settings.prefix,
        "BLOGHUB_DATABASE_URL": settings.sqlalchemy_url,
        "BLOGHUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "BLOGHUB_API_PORT": str(port),
        "BLOGHUB_TRUSTED_PROXIES": '["127.0.0.1"]',
    }
    with log_file.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bloghub.cli", command],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        stop_process(process, grace_s=30)


@contextlib.asynccontextmanager
async def projectors_for(command: str, settings: Settings) -> AsyncIterator[None]:
    """``bloghub api`` needs projectors beside it; ``bloghub run`` has its own."""
    if command == "run":
        yield
        return
    async with projecting(settings, "users"):
        yield


@pytest.mark.parametrize("command", ["api", "run"])
async def test_bloghub_takes_the_client_address_from_a_trusted_proxy(
    run_id: str, command: str, tmp_path: Path
) -> None:
    port = free_port()
    async with (
        isolated(run_id, f"cli{command}") as own,
        projectors_for(command, own),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        with bloghub(command, own, port, tmp_path / "bloghub.log"):

            async def serving() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(serving, timeout_s=90)
            email = f"cli-{secrets.token_hex(6)}@example.com"
            assert (await client.post("/v1/users", json=signup_body(email))).status_code == 201

            async def log_in(password: str, ip: str) -> int:
                answer = await client.post(
                    "/v1/auth/login",
                    json={"email": email, "password": password},
                    headers={"x-forwarded-for": ip},
                )
                return answer.status_code

            assert [await log_in("Wrong-pass-1", "198.51.100.5") for _ in range(6)] == [
                *[401] * 5,
                429,
            ]
            assert await log_in(PASSWORD, "203.0.113.5") == 200
