"""PostgreSQL out of reach under a running API: every request is answered, a 503 to retry
(with Retry-After, in the error shape) where the database is needed, never a 500, and the
connection stays usable; a database that hangs rather than refuses is given up on after
``db_statement_timeout_s``, not waited on for as long as it hangs; once it is back,
everything works again without a restart. The database is cut and hung through a proxy of
the test's own (the shared server is never touched)."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import httpx
import pytest
from structlog.testing import capture_logs

from bloghub import logs
from bloghub.logs import Seldom
from tests.conftest import BASE_DSN, isolated, projecting, serve
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.e2e.test_ops import operator
from tests.support import wait_until
from tests.tcp_proxy import Proxy, proxied

TIMEOUT_S = 1.0


async def _needs_the_database(
    c: httpx.AsyncClient, auth: dict[str, str], email: str
) -> list[httpx.Response]:
    """Requests that read or write the database (no cache can answer them)."""
    return [
        await c.post("/v1/auth/login", json={"email": email, "password": PASSWORD}),
        await c.get("/api/articles", params={"author": "someone"}),
        await c.get("/v1/users/me", headers=auth),
    ]


def _retry_later(answer: httpx.Response) -> None:
    assert answer.status_code == 503, (answer.request.url, answer.status_code, answer.text)
    assert answer.headers.get("retry-after"), answer.headers
    body = answer.json()
    assert "error" in body or "errors" in body, body


async def test_a_database_out_of_reach_is_a_503_to_retry_and_the_api_recovers(
    run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The line is said once per interval per process: another test's outage must not have
    # used this one up.
    monkeypatch.setattr(logs, "SELDOM", Seldom())
    server = urlsplit(BASE_DSN)
    async with proxied(server.hostname or "127.0.0.1", server.port or 5432) as proxy:
        database = f"bloghub_t{run_id}_pgout"
        url = f"postgresql+asyncpg://{server.username}:{server.password}@127.0.0.1:{proxy.port}/{database}"
        async with (
            isolated(run_id, "pgout", database_url=url, db_statement_timeout_s=TIMEOUT_S) as s,
            projecting(s),
            serve(s) as live,
            httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=30) as c,
        ):
            email = f"pgout-{run_id}@example.com"
            assert (await c.post("/v1/users", json=signup_body(email))).status_code == 201
            login = await c.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
            assert login.status_code == 200, login.text
            auth = {"authorization": f"Bearer {login.json()['access_token']}"}
            assert all(a.status_code == 200 for a in await _needs_the_database(c, auth, email))

            await _cut(proxy, c, auth, email)
            # The dashboard goes on (Kafka's lag, the projectors' heartbeats) and says the
            # database did not answer.
            lag = await c.get("/ops/api/lag", headers=operator(s))
            assert lag.status_code == 200, lag.text
            assert lag.json()["database_reachable"] is False
            assert lag.json()["projectors"]
            await _hung(proxy, c, auth, email)

            proxy.up()

            async def back() -> bool:
                answers = await _needs_the_database(c, auth, email)
                return all(a.status_code == 200 for a in answers)

            await wait_until(back, timeout_s=30)
            lag = await c.get("/ops/api/lag", headers=operator(s))
            assert lag.json()["database_reachable"] is True
            made = await c.post(
                "/v1/articles", json={"title": "t", "content": "x", "tags": []}, headers=auth
            )
            assert made.status_code == 201, made.text


async def _cut(proxy: Proxy, c: httpx.AsyncClient, auth: dict[str, str], email: str) -> None:
    proxy.down()
    # Past the few seconds the API keeps what it read of the projectors' generations.
    await asyncio.sleep(3)
    with capture_logs() as lines:
        for _ in range(2):
            answers = await _needs_the_database(c, auth, email)
            for answer in answers:
                _retry_later(answer)
    # The operator is told, once for all those answers (not once per request).
    said = [e for e in lines if e["event"] == "api.store_unreachable"]
    assert len(said) == 1, lines
    assert "database" in said[0]["error"], said
    # The same connection goes on serving (no reset after an error answer).
    assert (await c.get("/healthz")).status_code == 200


async def _hung(proxy: Proxy, c: httpx.AsyncClient, auth: dict[str, str], email: str) -> None:
    proxy.up()
    await wait_until(lambda: _served(c, auth), timeout_s=30)
    proxy.hang()
    started = time.monotonic()
    answers = await asyncio.gather(*(c.get("/v1/users/me", headers=auth) for _ in range(5)))
    took = time.monotonic() - started
    for answer in answers:
        _retry_later(answer)
    # Given up on after the statement timeout (or the pool's 5 s to connect), not held.
    assert took < 12, took


async def _served(c: httpx.AsyncClient, auth: dict[str, str]) -> bool:
    return (await c.get("/v1/users/me", headers=auth)).status_code == 200
