"""SMS on the real services: codes in Redis, the sliding-window limiter, the HTTP provider
against a loopback gateway, and the Postgres outbox with its worker."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.wire import Wire
from bloghub.auth.limiter import SlidingWindowLimiter, Throttle
from bloghub.auth.sms import providers
from bloghub.auth.sms.codes import SmsCodes, phone_key
from bloghub.auth.sms.failover import Guard, TimeoutSwitchFailover
from bloghub.auth.sms.outbox import OutboxMessage, OutboxStore, run_outbox_worker
from bloghub.auth.sms.providers import ConsoleProvider, HttpProvider, ProviderError, ProviderTimeout
from bloghub.auth.sms.sender import Delivery, SmsSender
from bloghub.errors import RateLimited
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.sms_gateway import Gateway


def new_phone() -> str:
    return f"+86139{secrets.randbelow(10**8):08d}"


@pytest.fixture(scope="module")
async def outbox_settings(run_id: str) -> AsyncIterator[Settings]:
    """A database of its own: the outbox is shared by every API process of a deployment,
    and the session's live app (console provider) would deliver these messages itself."""
    async with isolated(run_id, "outbox") as own:
        yield own


@pytest.fixture
async def engine(outbox_settings: Settings) -> AsyncIterator[AsyncEngine]:
    e = make_engine(outbox_settings.sqlalchemy_url, pool_size=2)
    yield e
    await e.dispose()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


# --- codes ---------------------------------------------------------------------------


async def test_a_code_is_six_zero_padded_digits(redis: Redis, settings: Settings) -> None:
    fixed = SmsCodes(redis, settings.prefix, randbelow=lambda _: 123)
    phone = new_phone()
    assert await fixed.issue("login", phone) == "000123"
    assert await fixed.check("login", phone, "000123")
    codes = SmsCodes(redis, settings.prefix)
    for _ in range(20):
        assert re.fullmatch(r"[0-9]{6}", await codes.issue("login", new_phone()))


async def test_the_code_lives_under_the_prefix_for_ten_minutes(
    redis: Redis, settings: Settings
) -> None:
    phone = new_phone()
    code = await SmsCodes(redis, settings.prefix).issue("bind", phone)
    key = f"{settings.prefix}:phone_code:bind:{phone_key(phone)}"
    assert await redis.get(key) == code.encode()
    assert 590 <= await redis.ttl(key) <= 600
    async for other in redis.scan_iter(match=f"*{phone_key(phone)}*"):
        assert other.decode().startswith(f"{settings.prefix}:")
    # The phone, personal data, names no key in clear (an erasure frees it for good), nor
    # by a plain hash, which trying every mobile number undoes in minutes: by a keyed one.
    assert [k async for k in redis.scan_iter(match=f"*{phone[1:]}*")] == []
    key_of_deployment = b"a deployment's key"
    await SmsCodes(redis, settings.prefix, names_key=key_of_deployment).issue("owner", phone)
    named = phone_key(phone, key_of_deployment)
    assert await redis.exists(f"{settings.prefix}:phone_code:owner:{named}")
    plain = hashlib.sha256(phone.encode()).hexdigest()[:32]
    assert [k async for k in redis.scan_iter(match=f"*{plain}*")] == []


async def test_concurrent_requests_issue_exactly_one_code(redis: Redis, settings: Settings) -> None:
    clients = [make_redis(settings.redis_url.get_secret_value()) for _ in range(5)]
    try:
        phone = new_phone()
        attempts = [SmsCodes(c, settings.prefix).issue("login", phone) for c in clients * 2]
        results = await asyncio.gather(*attempts, return_exceptions=True)
    finally:
        for c in clients:
            await c.aclose()
    codes = [r for r in results if isinstance(r, str)]
    assert len(codes) == 1
    assert all(isinstance(r, RateLimited) for r in results if not isinstance(r, str))
    assert await SmsCodes(redis, settings.prefix).check("login", phone, codes[0])


async def test_concurrent_requests_never_pass_the_daily_cap(
    redis: Redis, settings: Settings
) -> None:
    clients = [make_redis(settings.redis_url.get_secret_value()) for _ in range(4)]
    phone = new_phone()
    try:
        # Login and bind codes share a phone's day; a reset has a day of its own.
        attempts = [
            SmsCodes(c, settings.prefix, cooldown_s=0, per_day=3).issue(purpose, phone)
            for c in clients
            for purpose in ("login", "bind")
        ]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        reset = await SmsCodes(clients[0], settings.prefix, cooldown_s=0, per_day=3).issue(
            "reset", phone
        )
    finally:
        for c in clients:
            await c.aclose()
    assert len([r for r in results if isinstance(r, str)]) == 3
    assert all(isinstance(r, RateLimited) for r in results if not isinstance(r, str))
    assert len(reset) == 6, "strangers' login codes leave the owner's reset codes"


async def test_a_second_code_within_a_minute_is_refused(redis: Redis, settings: Settings) -> None:
    codes = SmsCodes(redis, settings.prefix)
    phone = new_phone()
    await codes.issue("login", phone)
    with pytest.raises(RateLimited) as caught:
        await codes.issue("login", phone.removeprefix("+86"))  # the same phone, spelled otherwise
    assert 1 <= caught.value.retry_after_s <= 60
    await codes.issue("reset", phone)  # another purpose has its own cooldown


async def test_three_wrong_tries_kill_the_code(redis: Redis, settings: Settings) -> None:
    codes = SmsCodes(redis, settings.prefix)
    phone = new_phone()
    code = await codes.issue("login", phone)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert [await codes.check("login", phone, wrong) for _ in range(3)] == [False] * 3
    assert not await codes.check("login", phone, code)


async def test_two_wrong_tries_leave_the_right_code_usable(
    redis: Redis, settings: Settings
) -> None:
    codes = SmsCodes(redis, settings.prefix)
    phone = new_phone()
    code = await codes.issue("login", phone)
    assert not await codes.check("login", phone, "not-it")
    await redis.delete(f"{settings.prefix}:phone_code_tries:login:{phone_key(phone)}")  # lost
    assert not await codes.check("login", phone, "")
    assert not await codes.check("login", phone, "999999" if code != "999999" else "000000")
    assert await codes.check("login", phone, code)


async def test_a_right_code_works_once(redis: Redis, settings: Settings) -> None:
    codes = SmsCodes(redis, settings.prefix)
    phone = new_phone()
    code = await codes.issue("login", phone)
    assert await codes.check("login", phone, code)
    assert not await codes.check("login", phone, code)


async def test_checking_when_no_code_was_sent_is_just_wrong(
    redis: Redis, settings: Settings
) -> None:
    codes = SmsCodes(redis, settings.prefix)
    assert not await codes.check("login", new_phone(), "123456")
    assert not await codes.check("login", "not a phone", "123456")


# --- limiter -------------------------------------------------------------------------


async def test_the_limiter_allows_limit_calls_then_refuses(
    redis: Redis, settings: Settings
) -> None:
    limiter = SlidingWindowLimiter(
        redis, settings.prefix, wire=Wire(settings.redis_url.get_secret_value())
    )
    key = f"ip:{secrets.token_hex(4)}"
    decisions = [await limiter.allow(key, 3, 1.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3].retry_after_s == 1
    assert 0 < await redis.pttl(limiter.key(key)) <= 1000
    await asyncio.sleep(1.05)  # the window slides past the three calls
    assert (await limiter.allow(key, 3, 1.0)).allowed


async def test_the_limiter_is_exact_under_concurrency(redis: Redis, settings: Settings) -> None:
    limiter = SlidingWindowLimiter(
        redis, settings.prefix, wire=Wire(settings.redis_url.get_secret_value())
    )
    key = f"user:{secrets.token_hex(4)}"
    decisions = await asyncio.gather(*(limiter.allow(key, 10, 60) for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 10
    assert all(1 <= d.retry_after_s <= 60 for d in decisions if not d.allowed)
    assert await redis.zcard(limiter.key(key)) == 10


# --- providers -----------------------------------------------------------------------


async def test_the_http_provider_posts_phone_and_text(gateway: Gateway) -> None:
    provider = HttpProvider(name="gw", url=gateway.url, bearer_token="tok-1", timeout_s=2)
    try:
        await provider.send("+8613800138000", "Your code is 000123")
    finally:
        await provider.aclose()
    assert gateway.received == [{"phone": "+8613800138000", "text": "Your code is 000123"}]
    assert gateway.auth == ["Bearer tok-1"]


async def test_a_gateway_quoting_the_request_puts_no_phone_or_code_in_the_error(
    gateway: Gateway,
) -> None:
    """The error is logged (``sms.provider_failed``): what the gateway said is kept, the
    phone and the code it quoted are not."""
    provider = HttpProvider(name="gw", url=gateway.url, timeout_s=2)
    phone = new_phone()
    try:
        gateway.mode = "echo_fail"
        with pytest.raises(ProviderError) as failed:
            await provider.send(phone, "Your bloghub code is 493817.")
    finally:
        await provider.aclose()
    said = str(failed.value)
    assert "HTTP 400" in said
    assert "refused" in said
    assert "493817" not in said
    assert phone.lstrip("+") not in said
    assert phone[-8:] not in said


async def test_the_http_provider_reports_failures_and_timeouts(gateway: Gateway) -> None:
    provider = HttpProvider(name="gw", url=gateway.url, timeout_s=0.3)
    try:
        gateway.mode = "fail"
        with pytest.raises(ProviderError) as failed:
            await provider.send(new_phone(), "x")
        assert not isinstance(failed.value, ProviderTimeout)
        assert "HTTP 500" in str(failed.value)
        gateway.mode = "hang"
        with pytest.raises(ProviderTimeout):
            await provider.send(new_phone(), "x")
    finally:
        await provider.aclose()


async def test_an_unreachable_gateway_is_a_provider_error() -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        provider = HttpProvider(name="gw", url=f"http://127.0.0.1:{port}/sms", timeout_s=2)
        try:
            with pytest.raises(ProviderError):
                await provider.send(new_phone(), "x")
        finally:
            await provider.aclose()


async def test_the_console_provider_logs_the_text_with_the_phone_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with capture_logs() as logs:
        # A fresh logger: the module's may be bound already, to the processors of before.
        monkeypatch.setattr(providers, "log", structlog.get_logger(providers.__name__))
        await ConsoleProvider().send("+8613800138000", "Your code is 000123")
    (line,) = [entry for entry in logs if entry["event"] == "sms.console"]
    assert line["text"] == "Your code is 000123"
    assert line["phone"] == "+8613******000"
    assert "13800138000" not in repr(logs)


# --- sender and outbox ---------------------------------------------------------------


@pytest.fixture
async def failover(gateway: Gateway) -> AsyncIterator[TimeoutSwitchFailover]:
    provider = HttpProvider(name="gw", url=gateway.url, timeout_s=2)
    yield TimeoutSwitchFailover([provider], guard=Guard(timeout_s=2, failures_to_open=50))
    await provider.aclose()


async def outbox_row(engine: AsyncEngine, phone: str) -> OutboxMessage:
    async with engine.connect() as conn:
        message_id = (
            await conn.exec_driver_sql("SELECT id FROM sms_outbox WHERE phone = $1", (phone,))
        ).scalar_one()
    message = await OutboxStore(engine).get(message_id)
    assert message is not None
    return message


async def test_a_throttled_sms_is_queued_and_the_worker_delivers_it(
    gateway: Gateway,
    failover: TimeoutSwitchFailover,
    redis: Redis,
    engine: AsyncEngine,
    settings: Settings,
) -> None:
    limiter = SlidingWindowLimiter(
        redis, settings.prefix, wire=Wire(settings.redis_url.get_secret_value())
    )
    throttle = Throttle(limiter, f"sms-global-{secrets.token_hex(4)}", limit=1, window_s=1)
    assert (await throttle.take()).allowed  # the global budget is now spent
    store = OutboxStore(engine, spacing_s=0.2)
    phone = new_phone()

    delivery = await SmsSender(failover, store, throttle=throttle).send(phone, "Code 000123")
    assert delivery is Delivery.QUEUED
    assert gateway.to(phone) == []
    queued = await outbox_row(engine, phone)
    assert (queued.status, queued.attempts, queued.last_error) == ("pending", 0, "throttled")

    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_outbox_worker(store, failover, stop=stop, throttle=throttle, poll_s=0.05)
    )
    try:
        await eventually(lambda: _status_is(engine, phone, "sent"))
    finally:
        stop.set()
        await worker
    assert gateway.to(phone) == [{"phone": phone, "text": "Code 000123"}]
    sent = await outbox_row(engine, phone)
    assert sent.sent_at is not None
    assert (sent.provider, sent.attempts) == ("gw", 1)
    assert sent.text == "", "a delivered code is not kept in clear"


async def test_a_failing_gateway_gets_at_most_three_spaced_retries(
    gateway: Gateway, failover: TimeoutSwitchFailover, engine: AsyncEngine, settings: Settings
) -> None:
    gateway.mode = "fail"
    store = OutboxStore(engine, max_attempts=3, spacing_s=0.2)
    phone = new_phone()
    assert await SmsSender(failover, store).send(phone, "Code 000123") is Delivery.QUEUED

    stop = asyncio.Event()
    worker = asyncio.create_task(run_outbox_worker(store, failover, stop=stop, poll_s=0.05))
    try:
        await eventually(lambda: _status_is(engine, phone, "failed"))
        await asyncio.sleep(0.6)  # three more spacings: no fourth retry comes
    finally:
        stop.set()
        await worker
    failed = await outbox_row(engine, phone)
    assert (failed.attempts, failed.sent_at) == (3, None)
    assert failed.text == "", "a code given up is not kept in clear"
    assert failed.last_error is not None
    assert "HTTP 500" in failed.last_error
    times = [
        t for m, t in zip(gateway.received, gateway.received_at, strict=True) if m["phone"] == phone
    ]
    assert len(times) == 1 + 3  # the sender's own try, then the worker's three
    assert all(later - earlier >= 0.19 for earlier, later in itertools.pairwise(times[1:]))


async def test_a_slowly_failing_gateway_rests_the_spacing_after_each_failure(
    gateway: Gateway, failover: TimeoutSwitchFailover, engine: AsyncEngine, settings: Settings
) -> None:
    """A try that takes longer than the spacing to fail is not followed at once by the
    next: the provider gets the spacing between its failure and the next try."""
    gateway.mode, gateway.slow_s = "slow_fail", 0.3
    store = OutboxStore(engine, max_attempts=3, spacing_s=0.2)
    phone = new_phone()
    assert await SmsSender(failover, store).send(phone, "Code 000789") is Delivery.QUEUED

    stop = asyncio.Event()
    worker = asyncio.create_task(run_outbox_worker(store, failover, stop=stop, poll_s=0.05))
    try:
        await eventually(lambda: _status_is(engine, phone, "failed"))
    finally:
        stop.set()
        await worker
    mine = [i for i, m in enumerate(gateway.received) if m["phone"] == phone]
    assert len(mine) == 1 + 3
    answered = [gateway.answered_at[i] for i in mine]
    arrived = [gateway.received_at[i] for i in mine]
    rests = [arrived[i + 1] - answered[i] for i in range(1, len(mine) - 1)]
    assert all(rest >= 0.19 for rest in rests), rests


async def test_a_queued_code_that_expires_is_never_sent_late(
    gateway: Gateway, failover: TimeoutSwitchFailover, engine: AsyncEngine, settings: Settings
) -> None:
    gateway.mode = "fail"
    store = OutboxStore(engine, spacing_s=5.0)
    phone = new_phone()
    sender = SmsSender(failover, store)
    assert await sender.send(phone, "Code 000456", valid_for_s=0.2) is Delivery.QUEUED
    gateway.mode = "ok"  # the gateway is back, but the code is dead before its retry is due

    stop = asyncio.Event()
    worker = asyncio.create_task(run_outbox_worker(store, failover, stop=stop, poll_s=0.05))
    try:
        await eventually(lambda: _status_is(engine, phone, "expired"))
    finally:
        stop.set()
        await worker
    expired = await outbox_row(engine, phone)
    assert (expired.attempts, expired.sent_at, expired.text) == (0, None, "")
    assert len(gateway.to(phone)) == 1  # the sender's own (failed) try; nothing came later


async def test_a_delivered_sms_is_not_queued(
    gateway: Gateway, failover: TimeoutSwitchFailover, engine: AsyncEngine
) -> None:
    phone = new_phone()
    sender = SmsSender(failover, OutboxStore(engine))
    assert await sender.send(phone.removeprefix("+86"), "hi") is Delivery.SENT
    assert gateway.to(phone) == [{"phone": phone, "text": "hi"}]
    async with engine.connect() as conn:
        queued = await conn.exec_driver_sql(
            "SELECT count(*) FROM sms_outbox WHERE phone = $1", (phone,)
        )
        assert queued.scalar_one() == 0


async def _status_is(engine: AsyncEngine, phone: str, status: str) -> bool:
    return (await outbox_row(engine, phone)).status == status
