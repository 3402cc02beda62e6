"""A database that hangs under running projectors (it takes their statements and never
answers; or a lock another session holds): each gives up on a statement after
``projector_statement_timeout_s`` and waits for the database as a store out of reach,
which ``/readyz`` (and the dashboard) say, rather than stalling silently for as long as it
hangs; once it answers again they carry on from where they were. Only the projectors'
database is hung, through a proxy of the test's own; the API reads it directly."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from tests.conftest import BASE_DSN, isolated, projecting, serve
from tests.e2e.test_accounts import signup_body
from tests.support import wait_until
from tests.tcp_proxy import proxied


async def test_projectors_give_up_on_a_hung_database_say_so_and_carry_on(run_id: str) -> None:
    server = urlsplit(BASE_DSN)
    async with proxied(server.hostname or "127.0.0.1", server.port or 5432) as proxy:
        database = f"bloghub_t{run_id}_pghang"
        direct = f"postgresql+asyncpg://{server.username}:{server.password}@{server.netloc.split('@')[-1]}/{database}"
        hung = direct.replace(server.netloc.split("@")[-1], f"127.0.0.1:{proxy.port}")
        async with (
            isolated(run_id, "pghang", database_url=hung, projector_statement_timeout_s=1.0) as s,
            projecting(s),
            serve(s.model_copy(update={"database_url": SecretStr(direct)})) as live,
            httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=30) as c,
        ):
            first = await c.post("/v1/users", json=signup_body(f"first-{run_id}@example.com"))
            assert first.status_code == 201, first.text
            await wait_until(lambda: _shown(c, first.json()["user"]["id"]), timeout_s=30)

            proxy.hang()
            second = await c.post("/v1/users", json=signup_body(f"second-{run_id}@example.com"))
            assert second.status_code == 201, second.text

            async def said() -> bool:
                waiting = (await _ready(c)).get("waiting") or []
                return any(w.get("projector") == "users" for w in waiting)

            # Given up on after the timeout (1 s here), and said: not a silent stall.
            await wait_until(said, timeout_s=20)
            assert not await _shown(c, second.json()["user"]["id"])

            proxy.up()
            await wait_until(lambda: _shown(c, second.json()["user"]["id"]), timeout_s=30)

            async def settled() -> bool:
                return not (await _ready(c)).get("waiting")

            await wait_until(settled, timeout_s=30)


async def _shown(c: httpx.AsyncClient, user_id: str) -> bool:
    return (await c.get(f"/v1/users/{user_id}")).status_code == 200


async def _ready(c: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await c.get("/readyz")).json()
    return body
