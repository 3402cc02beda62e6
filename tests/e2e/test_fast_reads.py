"""The hottest public reads answered in front of the middleware stack (api/fast_reads.py):
the same answers as the stack gives, the same anonymous limit, counts and profiles that
follow the projectors in every process, and a reader's repeated reads appended to the log
once."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest

from bloghub.events.codec import decode
from bloghub.events.topics import Family, topic_for
from bloghub.settings import Settings
from tests.conftest import LiveServer, read_topic, serve
from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_articles import Author
from tests.e2e.test_interactions import published
from tests.e2e.test_local_tier import author  # noqa: F401  (a fixture)
from tests.e2e.test_ops import operator
from tests.e2e.test_sessions import account, bearer, login
from tests.support import wait_until

BOUND_S = 5.0  # far below the tiers' TTL: only the projector's messages explain a change
IGNORED = {"x-request-id", "date", "server"}  # differ between any two answers
FRONT_END = "https://front.example"
# A request without an Origin, from an allowed origin and from one not allowed; and one
# carrying a cookie (of another page of the site, say), answered ``no-store``.
ORIGINS = (None, FRONT_END, "https://elsewhere.example")
VARIANTS = [(origin, None) for origin in ORIGINS] + [(None, "theme=dark")]


@pytest.fixture(params=[[], [FRONT_END]], ids=["no-cors", "cors"])
async def both_paths(
    request: pytest.FixtureRequest, settings: Settings, live_api: LiveServer
) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    """Two API processes of one deployment, the first answering hot reads on the fast path,
    the second every read through the stack; both without CORS, or both with a front end's
    origin in ``cors_origins``."""
    cors = settings.model_copy(update={"cors_origins": request.param})
    stacked = cors.model_copy(update={"fast_reads": False})
    async with serve(cors) as fast, serve(stacked) as stack_only:
        yield fast, stack_only


@pytest.fixture
async def held_long(settings: Settings, live_api: LiveServer) -> AsyncIterator[LiveServer]:
    """Another API process whose tier would keep copies for an hour if nothing dropped them."""
    async with serve(settings.model_copy(update={"local_cache_ttl_s": 3600.0})) as live:
        yield live


def _headers(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k not in IGNORED}


async def _held(server: LiveServer, article_id: str) -> None:
    """Anonymous reads until the server holds the article and its counts in its tier."""

    async def both() -> bool:
        async with httpx.AsyncClient(base_url=server.url) as anonymous:
            answer = await anonymous.get(f"/v1/articles/{article_id}")
        hot = server.container.hot
        return (
            answer.status_code == 200
            and hot.get(f"article:{article_id}") is not None
            and hot.get(f"tally:{article_id}") is not None
        )

    await wait_until(both, timeout_s=30)


async def _profile_held(server: LiveServer, user_id: str) -> None:
    """Anonymous reads until the server holds the user's public profile in its tier."""

    async def held() -> bool:
        answer = await _anonymous(server, f"/v1/users/{user_id}")
        return answer.status_code == 200 and server.container.hot.get(f"user:{user_id}") is not None

    await wait_until(held, timeout_s=30)


async def _anonymous(
    server: LiveServer, path: str, origin: str | None = None, cookie: str | None = None
) -> httpx.Response:
    headers = {"user-agent": "bloghub-tests/1"} | ({"origin": origin} if origin else {})
    headers |= {"cookie": cookie} if cookie else {}
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        return await anonymous.get(path, headers=headers)


async def _once_agreed(
    one: LiveServer,
    other: LiveServer,
    path: str,
    origin: str | None = None,
    cookie: str | None = None,
) -> tuple[httpx.Response, httpx.Response]:
    """Both servers' answers to ``path`` (from ``origin``, if one is given) once they agree
    twice in a row, or the last pair at the bound.
    The test's own reads are counted meanwhile (each client key once), and a count reaches
    two processes' tiers a few milliseconds apart: answers are compared once the count has
    reached both, within the bound the tiers follow the projector in. A tier that has just
    dropped what changed leaves the next read to the stack: only the pair after it shows
    the fast path's answer again."""
    last: list[tuple[httpx.Response, httpx.Response]] = []
    agreed: list[bool] = []

    async def agree() -> bool:
        pair = (
            await _anonymous(one, path, origin, cookie),
            await _anonymous(other, path, origin, cookie),
        )
        last.append(pair)
        fast, stacked = pair
        same_body = orjson.loads(fast.content) == orjson.loads(stacked.content)
        agreed.append(same_body and _headers(fast) == _headers(stacked))
        return agreed[-2:] == [True, True]

    with contextlib.suppress(TimeoutError):
        await wait_until(agree, timeout_s=BOUND_S)
    return last[-1]


async def test_hot_reads_answer_as_the_stack_does(
    client: httpx.AsyncClient,
    both_paths: tuple[LiveServer, LiveServer],
    author: Author,  # noqa: F811
) -> None:
    """The same body and headers from either path, CORS's included: a browser's cache
    keeps an answer apart per origin (``Vary``) and a front end is let read it
    (``Access-Control-Allow-Origin``) alike."""
    fast_path, stack_only = both_paths
    cors = fast_path.container.settings.cors_origins
    article_id, _ = await published(client, author)
    for server in both_paths:
        await _held(server, article_id)
        await _profile_held(server, author.id)
    for path in (
        f"/v1/articles/{article_id}",
        f"/v1/users/{author.id}",
        "/v1/ranking/hot",
        "/v1/ranking/hot?limit=3",
    ):
        for origin, cookie in VARIANTS:
            seen = path, origin, cookie
            fast, stacked = await _once_agreed(fast_path, stack_only, path, origin, cookie)
            assert fast.status_code == stacked.status_code == 200, seen
            assert orjson.loads(fast.content) == orjson.loads(stacked.content), seen
            assert _headers(fast) == _headers(stacked), seen
            assert fast.headers["x-request-id"], seen
            assert fast.headers.get("vary") == ("Origin" if cors else None), seen
            allowed = origin if origin in cors else None
            assert fast.headers.get("access-control-allow-origin") == allowed, seen
            assert fast.headers.get("cache-control") == ("no-store" if cookie else None), seen
    # What the fast path leaves to the stack is answered as before.
    bad = await _anonymous(fast_path, "/v1/ranking/hot?limit=0")
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_input"
    # One series of request ids per process, whichever path answered.
    hot = await _anonymous(fast_path, "/v1/ranking/hot")
    series = [a.headers["x-request-id"].rpartition("-")[0] for a in (hot, bad)]
    assert series[0] == series[1], series


async def test_a_repeated_request_id_is_the_first_on_either_path(live_api: LiveServer) -> None:
    await live_api.container.ranking.current()
    two = [(b"x-request-id", b"first-id"), (b"x-request-id", b"second-id")]
    async with httpx.AsyncClient(base_url=live_api.url) as anonymous:
        # The fast path answers the first; the stack the second (a query it leaves alone).
        for path in ("/v1/ranking/hot", "/v1/ranking/hot?limit=5&x=1"):
            answer = await anonymous.get(path, headers=two)
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-request-id"] == "first-id", path


async def test_hot_reads_count_against_the_anonymous_limit(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_ip_per_minute": 5})
    async with serve(limited) as live, httpx.AsyncClient(base_url=live.url) as anonymous:
        await live.container.ranking.current()
        ip = {"x-forwarded-for": "198.51.100.77"}
        answers = [await anonymous.get("/v1/ranking/hot", headers=ip) for _ in range(6)]
        refused_api = await anonymous.get("/api/tags", headers=ip)
        wrong_method = await anonymous.delete("/v1/tags", headers=ip)
        metrics = await anonymous.get("/metrics", headers=operator(limited))
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert (refused_api.status_code, wrong_method.status_code) == (429, 429)
    # Refused before routing, yet counted under the route each was meant for (one with
    # another method under the path's route, as its 405 would be).
    for method, route in (("GET", "/v1/ranking/hot"), ("GET", "/api/tags"), ("DELETE", "/v1/tags")):
        assert f'method="{method}",route="{route}",status="429"' in metrics.text, route


async def test_a_like_reaches_the_counts_every_process_serves(
    client: httpx.AsyncClient,
    live_api: LiveServer,
    held_long: LiveServer,
    author: Author,  # noqa: F811
    unique_email: Callable[[], str],
) -> None:
    article_id, after = await published(client, author)
    servers = [live_api, held_long]
    for server in servers:
        await _held(server, article_id)
    tokens = await login(client, await account(client, unique_email))
    liked = await client.put(
        f"/v1/articles/{article_id}/like", headers={**bearer(tokens["access_token"]), **after}
    )
    assert liked.status_code == 200, liked.text
    started = time.monotonic()

    async def everywhere() -> bool:
        answers = [await _anonymous(s, f"/v1/articles/{article_id}") for s in servers]
        return all(a.json()["article"]["like_cnt"] == 1 for a in answers)

    await wait_until(everywhere, timeout_s=30)
    assert time.monotonic() - started < BOUND_S


async def test_a_readers_repeated_reads_are_appended_once(
    settings: Settings,
    client: httpx.AsyncClient,
    live_api: LiveServer,
    author: Author,  # noqa: F811
) -> None:
    article_id, _ = await published(client, author)
    await _held(live_api, article_id)  # as one reader: the tests' client
    reader = {"x-forwarded-for": "198.51.100.61", "user-agent": "one-reader/1"}
    for _ in range(20):
        answer = await client.get(f"/v1/articles/{article_id}", headers=reader)
        assert answer.status_code == 200

    async def read_cnt() -> int:
        answer = await client.get(f"/v1/articles/{article_id}", headers=reader)
        count: int = answer.json()["article"]["read_cnt"]
        return count

    async def counted() -> bool:
        return await read_cnt() >= 2

    await wait_until(counted, timeout_s=30)
    await live_api.container.reads.flush()
    records = await read_topic(settings, topic_for(settings.prefix, Family.INTERACTIONS))
    reads = [
        e
        for e in (decode(r.value) for r in records)
        if e.type == "article.read" and e.aggregate_id == article_id
    ]
    assert await read_cnt() == 2
    assert len(reads) == 2, "one event per reader, however often each read"


@pytest.fixture
def servers(live_api: LiveServer, held_long: LiveServer) -> list[LiveServer]:
    """Two API processes of one deployment, the second keeping its copies for an hour."""
    return [live_api, held_long]


async def test_a_held_profile_follows_its_changes_in_every_process(
    client: httpx.AsyncClient,
    servers: list[LiveServer],
    author: Author,  # noqa: F811
    unique_email: Callable[[], str],
) -> None:
    """A nickname change and a new follower reach the profile every process answers from
    its tier within the bound; an erased user's is answered by none (the stack's 404)."""
    for server in servers:
        await _profile_held(server, author.id)
    path = f"/v1/users/{author.id}"

    async def everywhere(check: Callable[[httpx.Response], bool]) -> None:
        changed_at = time.monotonic()
        while True:
            answers = [await _anonymous(server, path) for server in servers]
            if all(check(a) for a in answers):
                return
            assert time.monotonic() - changed_at < BOUND_S, [a.text for a in answers]

    renamed = await client.patch(
        "/v1/users/me", json={"nickname": "Fast Reader"}, headers=author.auth
    )
    assert renamed.status_code == 200, renamed.text
    await everywhere(
        lambda a: a.status_code == 200 and a.json()["user"]["nickname"] == "Fast Reader"
    )

    fan = await login(client, await account(client, unique_email))
    followed = await client.put(f"{path}/follow", headers=bearer(fan["access_token"]))
    assert followed.status_code in (200, 204), followed.text
    await everywhere(lambda a: a.status_code == 200 and a.json()["user"]["followers"] == 1)
    for server in servers:
        await _profile_held(server, author.id)

    erased = await client.request(
        "DELETE", "/v1/users/me", json={"password": PASSWORD}, headers=author.auth
    )
    assert erased.status_code == 204, erased.text
    await everywhere(lambda a: a.status_code == 404)
