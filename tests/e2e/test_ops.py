"""The ops endpoints: closed without the operator token; lag, states and metrics with it."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from bloghub.adapters.postgres.migrations import register_migration, set_phase
from bloghub.adapters.postgres.tables import generations
from bloghub.migration_phases import Phase
from bloghub.ops.history import history_key, sampled_key
from bloghub.settings import Settings
from tests.conftest import LiveServer, isolated, projecting, serve
from tests.e2e.test_accounts import signup_body
from tests.e2e.test_sessions import account, bearer, login
from tests.private_redis import private_redis
from tests.support import wait_until


def operator(settings: Settings) -> dict[str, str]:
    return {"authorization": f"Bearer {settings.operator_token.get_secret_value()}"}


@pytest.mark.parametrize("path", ["/ops", "/ops/api/lag", "/ops/api/history", "/ops/api/stream"])
async def test_ops_needs_the_operator_token(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 401
    wrong = await client.get(path, headers={"authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    forged = await client.get(path, headers={"cookie": "bloghub_ops=99999999999.deadbeef"})
    assert forged.status_code == 401


async def test_operator_session_cookie_opens_the_page(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    refused = await client.post("/ops/session", json={"token": "guess"})
    assert refused.status_code == 401
    opened = await client.post(
        "/ops/session", json={"token": settings.operator_token.get_secret_value()}
    )
    assert opened.status_code == 204
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert opened.headers["cache-control"] == "no-store"
    page = await client.get("/ops")
    assert page.status_code == 200
    assert "/ops/static/ops.js" in page.text
    assert "http" not in page.text.split("<body>")[1]


async def _snapshot_with(
    client: httpx.AsyncClient,
    settings: Settings,
    ready: Callable[[dict[str, Any]], bool],
    within_s: float = 10.0,
) -> dict[str, Any]:
    for _ in range(int(within_s * 10)):
        snap: dict[str, Any] = (await client.get("/ops/api/lag", headers=operator(settings))).json()
        if ready(snap):
            return snap
        await asyncio.sleep(0.1)
    raise AssertionError(f"ops snapshot never became ready: {snap}")


async def test_lag_snapshot_shows_the_users_projector(
    client: httpx.AsyncClient, settings: Settings, unique_email: Callable[[], str]
) -> None:
    assert (await client.post("/v1/users", json=signup_body(unique_email()))).status_code == 201

    def caught_up(snap: dict[str, Any]) -> bool:
        # One instance: a users projector another test stopped without its goodbye (a
        # SIGKILL) stays listed until its heartbeat expires, within the heartbeat's TTL.
        users = [p for p in snap["projectors"] if p["projector"] == "users"]
        return (
            bool(users)
            and users[0]["lag"] == 0
            and len(users[0]["partitions"]) > 0
            and len(users[0]["instances"]) == 1
        )

    snap = await _snapshot_with(client, settings, caught_up, within_s=settings.heartbeat_ttl_s + 15)
    users = next(p for p in snap["projectors"] if p["projector"] == "users")
    assert users["group"] == f"{settings.prefix}.users.g1"
    assert users["generation"] == 1
    assert users["state"] in ("OK", "ERR")  # ERR if a dead-letter test ran just before
    assert len(users["instances"]) == 1
    assert users["lag_seconds"] == 0
    assert {p["partition"] for p in users["partitions"]} == set(range(settings.topic_partitions))
    assert all(
        p["committed"] is None or p["committed"] <= p["end_offset"] for p in users["partitions"]
    )


async def test_history_and_stream_answer_with_the_token(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await _snapshot_with(client, settings, lambda s: bool(s["projectors"]))
    group = f"{settings.prefix}.users.g1"
    history: dict[str, Any] = {}

    async def sampled() -> bool:  # the sampler's first beat may still be on its way
        nonlocal history
        answer = await client.get("/ops/api/history?minutes=5", headers=operator(settings))
        history = answer.json()
        return bool(history["series"].get(group))

    await wait_until(sampled, timeout_s=settings.ops_sample_every_s * 3 + 10)
    assert {"at", "lag", "lag_seconds", "applied", "dead_letters"} <= set(
        history["series"][group][0]
    )
    bad = await client.get("/ops/api/history?minutes=abc", headers=operator(settings))
    assert bad.status_code == 422


async def test_a_generation_switched_out_keeps_its_line_for_the_hour_its_samples_do(
    client: httpx.AsyncClient, settings: Settings, live_api: LiveServer
) -> None:
    """The history answered only the groups watched now: a generation a replay switched
    out lost its line on the charts at the switch, though its samples were still kept."""
    await _snapshot_with(client, settings, lambda s: bool(s["projectors"]))
    retired = f"{settings.prefix}.users.g{secrets.randbelow(10**6) + 100}"
    sample = {"at": time.time() - 60, "lag": 3, "lag_seconds": 1.5, "applied": 7}
    history = live_api.container.ops.history
    await history.add(retired, {**sample, "dead_letters": 0})
    try:
        answer = await client.get("/ops/api/history?minutes=5", headers=operator(settings))
        series = answer.json()["series"]
        assert series[retired] == [{**sample, "dead_letters": 0}]
        assert f"{settings.prefix}.users.g1" in series  # the watched ones as before
        shorter = await client.get("/ops/api/history?minutes=0.5", headers=operator(settings))
        assert retired not in shorter.json()["series"]  # sampled before that window
    finally:
        await live_api.container.redis.delete(history_key(settings.prefix, retired))
        await live_api.container.redis.zrem(sampled_key(settings.prefix), retired)

    async with client.stream("GET", "/ops/api/stream", headers=operator(settings)) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-store"
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                event = orjson.loads(line[len("data: ") :])
                assert any(p["projector"] == "users" for p in event["projectors"])
                break


async def test_metrics_in_prometheus_format(client: httpx.AsyncClient, settings: Settings) -> None:
    await _snapshot_with(client, settings, lambda s: bool(s["projectors"]))
    await client.get("/healthz")
    assert (await client.get("/metrics")).status_code == 401
    text = (await client.get("/metrics", headers=operator(settings))).text
    group = f"{settings.prefix}.users.g1"
    topic = f"{settings.prefix}.users"
    assert f'bloghub_consumer_lag{{group="{group}",partition="0",topic="{topic}"}}' in text
    assert "bloghub_consumer_lag_seconds{" in text
    assert f'bloghub_events_applied_total{{group="{group}"}}' in text
    assert "bloghub_dead_letters_total{" in text
    assert 'bloghub_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert (
        'bloghub_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"}'
        in text
    )


async def test_a_failure_before_routing_is_counted_under_its_route(
    client: httpx.AsyncClient,
    live_api: LiveServer,
    settings: Settings,
    unique_email: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 500 from a middleware (the rate limit's count, here made to fail) came before the
    route was known: it was counted as "unmatched", a path no route has."""
    tokens = await login(client, await account(client, unique_email))

    async def failing(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("injected: the count failed")

    monkeypatch.setattr(live_api.container.limiter, "allow_all_reading", failing)
    failed = await client.get("/v1/users/me", headers=bearer(tokens["access_token"]))
    assert failed.status_code == 500
    monkeypatch.undo()
    text = (await client.get("/metrics", headers=operator(settings))).text
    assert 'bloghub_http_requests_total{method="GET",route="/v1/users/me",status="500"}' in text


async def test_metrics_can_be_opened_for_an_internal_address(settings: Settings) -> None:
    async with (
        serve(settings.model_copy(update={"metrics_public": True})) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        answer = await client.get("/metrics")
        assert answer.status_code == 200
        assert "bloghub_http_requests_total" in answer.text


async def test_a_migration_in_progress_is_in_the_snapshot_without_its_password(
    run_id: str,
) -> None:
    """``bloghub migrate`` is shown beside the replays: the read model, its phase, where
    reads come from and which stores are written, and the target's URL with no password."""
    target = "postgresql+asyncpg://mover:s3cret-Pass@10.0.0.9:5432/articles_elsewhere"
    async with isolated(run_id, "ops_migration") as own, serve(own) as live:
        async with live.container.engine.begin() as conn:
            await register_migration(conn, "articles", 1, target)
            assert await set_phase(conn, "articles", Phase.SOURCE_ONLY, Phase.SOURCE_FIRST)
        async with httpx.AsyncClient(base_url=live.url) as client:
            answer = await client.get("/ops/api/lag", headers=operator(own))
        assert answer.status_code == 200
        assert "s3cret-Pass" not in answer.text
        assert answer.json()["migrations"] == [
            {
                "projector": "articles",
                "generation": 1,
                "phase": 2,
                "phase_name": "source first",
                "reads_from": "source",
                "writes": ["target", "source"],
                "target": "postgresql+asyncpg://mover:***@10.0.0.9:5432/articles_elsewhere",
            }
        ]


async def test_a_built_generation_is_on_the_dashboard_but_not_in_the_metrics(
    run_id: str,
) -> None:
    """A generation `replay --no-swap` built is written by no one until switched in: the
    dashboard lists it BUILT with its lag (not STOP), and /metrics leaves it out, where an
    alert on lag would fire for it."""
    async with isolated(run_id, "ops_built") as own, serve(own) as live:
        async with live.container.engine.begin() as conn:
            await conn.execute(
                generations.insert().values(projector="articles", generation=2, state="built")
            )
        async with httpx.AsyncClient(base_url=live.url) as client:
            snap = await _snapshot_with(
                client,
                own,
                # Listed, and sampled (what /metrics would report from).
                lambda s: any(
                    p["projector"] == "articles"
                    and p["generation"] == 2
                    and p["sampled_at"] is not None
                    for p in s["projectors"]
                ),
                within_s=30.0,
            )
            (built,) = [
                p
                for p in snap["projectors"]
                if p["projector"] == "articles" and p["generation"] == 2
            ]
            assert (built["state"], built["serving"]) == ("BUILT", False)
            text = (await client.get("/metrics", headers=operator(own))).text
        assert f'group="{own.prefix}.articles.g2"' not in text


async def test_with_redis_down_the_dashboard_reads_the_lag_from_kafka_and_says_so(
    run_id: str,
) -> None:
    """History, heartbeats and counters live in Redis, and the operator door counted its
    tries there: with Redis down the page, the lag and /metrics answered 503, exactly when
    an operator needs them. They now answer from Kafka, say what they lack, and the door
    counts in the process meanwhile (wrong tokens still lock it)."""
    async with private_redis() as store, isolated(run_id, "opsredis") as base:
        s = base.model_copy(
            update={
                "redis_url": SecretStr(store.url),
                "ops_sample_every_s": 0.2,
                "ops_token_failures_per_minute": 3,
            }
        )
        async with (
            projecting(s),
            serve(s) as api,
            httpx.AsyncClient(base_url=api.url, timeout=30) as c,
        ):
            assert (
                await c.post("/v1/users", json=signup_body(f"or-{run_id}@example.com"))
            ).status_code == 201

            async def sampled() -> bool:
                lag = (await c.get("/ops/api/lag", headers=operator(s))).json()
                return lag["redis_reachable"] and all(p["sampled_at"] for p in lag["projectors"])

            await wait_until(sampled, timeout_s=30)
            await store.stop()

            page = await c.get("/ops", headers=operator(s))
            assert page.status_code == 200, page.text
            lag = await c.get("/ops/api/lag", headers=operator(s))
            assert lag.status_code == 200, lag.text
            snap = lag.json()
            assert snap["redis_reachable"] is False
            assert snap["database_reachable"] is True
            users = next(p for p in snap["projectors"] if p["projector"] == "users")
            assert users["state"] == "UNKNOWN"
            assert users["lag"] == sum(part["lag"] for part in users["partitions"])
            assert {part["topic"] for part in users["partitions"]} == {f"{s.prefix}.users"}
            assert users["dead_letters"] is None
            assert snap["dead_letters"]["total"] is None
            history = await c.get("/ops/api/history", headers=operator(s))
            assert history.status_code == 200, history.text
            assert history.json() == {"series": {}, "redis_reachable": False}
            metrics = await c.get("/metrics", headers=operator(s))
            assert metrics.status_code == 200, metrics.text
            assert f'bloghub_consumer_lag{{group="{users["group"]}"' in metrics.text
            token = s.operator_token.get_secret_value()
            opened = await c.post("/ops/session", json={"token": token})
            assert opened.status_code == 204, opened.text

            async with httpx.AsyncClient(base_url=api.url, timeout=30) as guesser:
                for _ in range(3):
                    wrong = await guesser.get(
                        "/ops/api/lag", headers={"authorization": "Bearer guess"}
                    )
                    assert wrong.status_code == 401
                locked = await guesser.get("/ops/api/lag", headers=operator(s))
            assert locked.status_code == 429, locked.text
            assert int(locked.headers["retry-after"]) >= 1

            await store.start()
            again = await c.get("/healthz")
            assert again.status_code == 200


async def test_with_kafka_never_reached_and_redis_down_the_lag_is_said_unknown(
    run_id: str,
) -> None:
    """With Redis down the lag is read from Kafka; with Kafka out of reach since the
    process began as well, that reader had never started and the lag and /metrics were a
    500. The page now answers with the lag not known, as it does for what Redis kept."""
    async with private_redis() as store, isolated(run_id, "opsnokafka") as base:
        await store.stop()
        s = base.model_copy(
            update={"redis_url": SecretStr(store.url), "kafka_bootstrap": "127.0.0.1:1"}
        )
        async with serve(s) as api, httpx.AsyncClient(base_url=api.url, timeout=30) as c:
            lag = await c.get("/ops/api/lag", headers=operator(s))
            assert lag.status_code == 200, lag.text
            snap = lag.json()
            assert snap["redis_reachable"] is False
            assert snap["projectors"], snap
            assert all(p["lag"] is None and p["partitions"] == [] for p in snap["projectors"])
            metrics = await c.get("/metrics", headers=operator(s))
            assert metrics.status_code == 200, metrics.text
            assert "bloghub_consumer_lag{" not in metrics.text


async def test_with_kafka_out_of_reach_the_lag_is_not_known_nor_exported_as_current(
    run_id: str,
) -> None:
    """The API's samplers cannot reach Kafka (Redis answers): no sample is taken. The
    dashboard said every projector was OK and /metrics exported the last lag it had, from
    a run long gone, as now; the state is UNKNOWN and the lag series are left out."""
    async with isolated(run_id, "opsstale", ops_sample_every_s=0.5) as s:
        async with serve(s) as api, httpx.AsyncClient(base_url=api.url, timeout=30) as c:
            await _snapshot_with(
                c, s, lambda snap: all(p["sampled_at"] for p in snap["projectors"]), 30.0
            )
        cut = s.model_copy(update={"kafka_bootstrap": "127.0.0.1:1", "ops_state_window_s": 2.0})
        async with serve(cut) as api, httpx.AsyncClient(base_url=api.url, timeout=30) as c:
            await asyncio.sleep(2.5)  # the last sample is older than the window
            snap = (await c.get("/ops/api/lag", headers=operator(cut))).json()
            assert snap["projectors"], snap
            assert {p["state"] for p in snap["projectors"]} == {"UNKNOWN"}, snap
            metrics = await c.get("/metrics", headers=operator(cut))
            assert metrics.status_code == 200, metrics.text
            assert "bloghub_consumer_lag{" not in metrics.text
            assert "bloghub_http_requests_total{" in metrics.text


async def test_lag_with_no_live_instance_shows_absent_not_ok(run_id: str) -> None:
    """No projector runs (down, or unable to reach Redis to say it waits): the dashboard
    says ABSENT while there is lag, not OK; once one runs and applies it, OK."""
    overrides: dict[str, object] = {"ops_sample_every_s": 0.5, "ops_state_window_s": 60.0}
    async with (
        isolated(run_id, "absent", **overrides) as s,
        serve(s) as api,
        httpx.AsyncClient(base_url=api.url, timeout=30) as c,
    ):
        signed = await c.post("/v1/users", json=signup_body(f"ab-{run_id}@example.com"))
        assert signed.status_code == 201, signed.text

        def users(snap: dict[str, Any]) -> dict[str, Any]:
            return next(p for p in snap["projectors"] if p["projector"] == "users")

        async def state_is(state: str) -> bool:
            found = users((await c.get("/ops/api/lag", headers=operator(s))).json())
            return bool(found["state"] == state)

        await wait_until(lambda: state_is("ABSENT"), timeout_s=30)
        absent = users((await c.get("/ops/api/lag", headers=operator(s))).json())
        assert absent["instances"] == []
        assert absent["lag"] > 0
        async with projecting(s):
            await wait_until(lambda: state_is("OK"), timeout_s=60)
