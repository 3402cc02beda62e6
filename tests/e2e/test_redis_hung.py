"""A Redis that hangs (accepts connections, answers nothing) while an API process serves:
a published article's detail that no cache holds is answered from PostgreSQL, whole and
with its counts, and after one timeout the other calls to the hung server fail at once
instead of each waiting out its own (adapters/redis/reach.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from pydantic import SecretStr

from bloghub.adapters.redis.reach import HOLD_S
from bloghub.settings import Settings
from tests.conftest import LiveServer, serve
from tests.e2e.test_articles import Author
from tests.e2e.test_local_tier import published
from tests.e2e.test_sessions import account, bearer, login
from tests.private_redis import private_redis

SOCKET_TIMEOUT_S = 2.0  # make_redis's and the wire's


async def test_a_cold_detail_is_served_from_the_read_model_while_redis_hangs(
    client: httpx.AsyncClient,
    live_api: LiveServer,
    settings: Settings,
    unique_email: Callable[[], str],
) -> None:
    tokens = await login(client, await account(client, unique_email))
    author = Author(tokens["user"]["id"], bearer(tokens["access_token"]))
    first = await published(client, author, "Read while Redis hangs")
    second = await published(client, author, "Read after it")
    liked = await client.put(f"/v1/articles/{first}/like", headers=author.auth)
    assert liked.status_code == 200, liked.text
    after = {"bloghub-after": liked.headers["bloghub-position"]}
    shown = await client.get(f"/v1/articles/{first}", headers={**after, **author.auth})
    assert shown.json()["article"]["like_cnt"] == 1
    # The caller's own marks, and the reads (counted off the request path), aside.
    mine = ("liked", "collected", "read_cnt")
    expected = {k: v for k, v in shown.json()["article"].items() if k not in mine}

    async with private_redis() as store:
        own = settings.model_copy(update={"redis_url": SecretStr(store.url)})
        async with serve(own) as api, httpx.AsyncClient(base_url=api.url) as anonymous:
            store.pause()
            try:
                started = time.monotonic()
                cold = await anonymous.get(f"/v1/articles/{first}")
                first_took = time.monotonic() - started
                started = time.monotonic()
                other = await anonymous.get(f"/v1/articles/{second}")
                second_took = time.monotonic() - started
            finally:
                store.resume()

    # Nothing of these was cached (this server's Redis is new and empty): each came from
    # the read models, counts included, as a reader sees them.
    assert cold.status_code == 200, cold.text
    got = cold.json()["article"]
    assert {k: v for k, v in got.items() if k not in mine} == expected
    assert got["liked"] is None
    assert got["collected"] is None
    assert other.status_code == 200, other.text
    assert other.json()["article"]["id"] == second
    # The caches of the first read were tried in turn (the body, the author, the comment
    # counts, the like counts): one timeout, then the server was held out of reach, so the
    # rest failed at once. Without the hold, each waited its own timeout, four in all.
    assert first_took < 2 * SOCKET_TIMEOUT_S, first_took
    # The second began within the hold, or paid one timeout more at most.
    assert second_took < SOCKET_TIMEOUT_S + HOLD_S, second_took
