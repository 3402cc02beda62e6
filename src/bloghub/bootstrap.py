"""The composition root: every client is built here at start-up and handed on explicitly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import httpx
import structlog
from aiokafka.errors import KafkaError
from opensearchpy import AsyncOpenSearch
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

import bloghub.events.catalog  # noqa: F401  (registers every event type)
from bloghub.adapters.kafka import LogEnds, ensure_topics
from bloghub.adapters.opensearch import make_opensearch
from bloghub.adapters.postgres.engine import make_engine, make_read_engine
from bloghub.adapters.postgres.engines import Engines
from bloghub.adapters.postgres.lookups import Lookups
from bloghub.adapters.postgres.reservations import Reservations
from bloghub.adapters.postgres.user_keys import UserKeys
from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.cache import Cache
from bloghub.adapters.redis.counters import CounterCache
from bloghub.adapters.redis.local_tier import LocalTier, follow_changes
from bloghub.adapters.redis.presence import Presence
from bloghub.adapters.redis.sessions import SessionStore
from bloghub.adapters.redis.wire import Wire
from bloghub.adapters.search_views import Views
from bloghub.api.consistency import OwnWrites, Progress, migrated_store
from bloghub.auth.hidden_names import names_key
from bloghub.auth.limiter import LocalLimiter, SlidingWindowLimiter
from bloghub.auth.lockout import FailureLimit, LocalFailures, LoginLockout
from bloghub.auth.passwords import PasswordHasher
from bloghub.auth.sealing import master_key
from bloghub.auth.sms.setup import Sms, build_sms
from bloghub.auth.tokens import TokenPolicy, TokenService
from bloghub.auth.wechat import StateCookie, WeChatClient, WeChatConfig
from bloghub.cli_errors import where
from bloghub.commands.after_append import AfterAppend
from bloghub.commands.context import CommandDeps
from bloghub.commands.read_counting import ReadBuffer
from bloghub.commands.sweeper import sweep_forever
from bloghub.events.log import EventLog
from bloghub.events.position import PositionSigner
from bloghub.live.hub import LiveHub
from bloghub.live.socket import LiveConfig
from bloghub.logs import configure_logging
from bloghub.ops.dead_letter_view import DeadLetterView
from bloghub.ops.history import History
from bloghub.ops.lag import LagReader
from bloghub.ops.monitor import MonitorConfig, OpsMonitor, sample_forever
from bloghub.ranking.served import HotRanking
from bloghub.settings import Settings

log = structlog.get_logger(__name__)
# How long an API process waits for one search request of a cluster that does not answer.
SEARCH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class WeChatLogin:
    client: WeChatClient
    cookie: StateCookie
    http: httpx.AsyncClient


def build_wechat(settings: Settings) -> WeChatLogin | None:
    if not settings.wechat_appid:
        return None
    config = WeChatConfig(
        appid=settings.wechat_appid,
        secret=settings.wechat_secret.get_secret_value(),
        authorize_url=settings.wechat_authorize_url,
        token_url=settings.wechat_token_url,
        redirect_uri=settings.wechat_redirect_uri,
        timeout_s=settings.wechat_timeout_s,
    )
    http = httpx.AsyncClient()
    return WeChatLogin(
        client=WeChatClient(config, http),
        cookie=StateCookie(settings.wechat_state_secret.get_secret_value()),
        http=http,
    )


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine  # the write side's transactions, and operations
    read_engine: AsyncEngine  # the read models' single statements (``read_all``)
    redis: Redis
    wire: Wire  # the hottest round trips (adapters/redis/wire.py)
    event_log: EventLog
    commands: CommandDeps
    tokens: TokenService
    progress: Progress
    own_writes: OwnWrites
    positions: PositionSigner
    log_ends: LogEnds
    ops: OpsMonitor
    lockout: LoginLockout
    # Wrong current passwords where one is asked again (binding a phone), per account.
    password_checks: FailureLimit
    # Operator token tries (Bearer or cookie) per client address.
    operator_checks: FailureLimit
    cache: Cache
    hot: LocalTier
    wechat: WeChatLogin | None
    limiter: SlidingWindowLimiter
    sms: Sms
    # The hot ranking's last result, served from this process (ranking/served.py).
    ranking: HotRanking
    live: LiveHub
    _ops_readers: tuple[LagReader, DeadLetterView]
    # The search indexes (api/v1/search.py); built last so other fields keep their order.
    search: AsyncOpenSearch
    # What this process's refreshes made searchable, and the views its first pages share.
    search_views: Views
    # Interactions: reads counted off the request path, and the counter hashes read per detail.
    reads: ReadBuffer
    counters: CounterCache
    # One-statement reads on the command path (the erased check, what a like decides on):
    # a kept asyncpg pool with statements prepared per connection (adapters/postgres/lookups.py).
    lookups: Lookups
    # The dashboard's logins per client address, counted here while Redis cannot be asked.
    ops_logins_local: LocalLimiter

    async def run_ops_sampler(self, stop: asyncio.Event) -> None:
        """Connect the ops readers (waiting for Kafka if it is down), then sample until stop."""
        delay = 0.5
        while not stop.is_set():
            try:
                for reader in self._ops_readers:
                    await reader.start()
                break
            except (KafkaError, OSError) as exc:
                said = where("Kafka", self.settings)
                log.warning("ops.readers_waiting_for_kafka", error=repr(exc), **said)
                for reader in self._ops_readers:
                    await reader.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                delay = min(delay * 2, 10.0)
        try:
            await sample_forever(
                self.ops,
                self.redis,
                prefix=self.settings.prefix,
                every_s=self.settings.ops_sample_every_s,
                stop=stop,
            )
        finally:
            for reader in self._ops_readers:
                await reader.close()

    async def run_background(self, stop: asyncio.Event) -> None:
        """What the API process runs beside requests: the ops sampler, the SMS outbox worker,
        the reservation sweeper (keys are reserved here, so they are swept here), the
        subscription that keeps the in-process cache tier coherent and the check of the hot
        ranking's version (the ranking is computed elsewhere, never in API processes).

        Each is kept running: one that fails is logged and started again, and the others go
        on; all of them have ended (the read buffer drained) when this returns."""
        jobs: dict[str, Job] = {
            "ops_sampler": self.run_ops_sampler,
            "sms_outbox": self.sms.run_worker,
            "reservation_sweeper": self.run_sweeper,
            "cache_changes": lambda s: follow_changes(
                self.hot, self.redis, self.settings.prefix, s
            ),
            "ranking_version": self.ranking.follow,
            "read_buffer": self.reads.run,
            "live": self.live.run,
        }
        await asyncio.gather(*(kept_running(name, job, stop) for name, job in jobs.items()))

    async def run_sweeper(self, stop: asyncio.Event) -> None:
        await sweep_forever(
            self.commands.reservations,
            older_than_s=self.settings.reservation_ttl_s,
            every_s=self.settings.sweep_interval_s,
            stop=stop,
            redis=self.redis,
            lock=f"{self.settings.prefix}:reservations:sweeper",
        )

    async def close(self) -> None:
        # Steps that follow writes already answered get a last chance before the clients go.
        await self.commands.after_append.drain(self.settings.after_write_wait_s)
        await self.sms.close()
        if self.wechat is not None:
            await self.wechat.http.aclose()
        await self.event_log.close()
        await self.log_ends.close()
        await self.redis.aclose()
        await self.wire.close()
        await self.search.close()
        await self.commands.keys.close()
        await self.lookups.close()  # the keys' checks use it too; closing twice is harmless
        await self.engine.dispose()
        await self.read_engine.dispose()
        await self.progress.engines.dispose()  # the stores migrations moved reads to


Job = Callable[[asyncio.Event], Awaitable[None]]


async def kept_running(
    name: str,
    job: Job,
    stop: asyncio.Event,
    *,
    first_delay_s: float = 0.5,
    max_delay_s: float = 30.0,
) -> None:
    """Run ``job`` until ``stop``; if it fails, log why and start it again after a pause
    that doubles while it keeps failing. A job that returns is done."""
    delay = first_delay_s
    while not stop.is_set():
        try:
            await job(stop)
            return
        except Exception:
            log.exception("background.job_failed", job=name, restart_in_s=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, max_delay_s)


async def build(settings: Settings, *, pool_size: int = 10) -> Container:
    configure_logging(settings)
    timeout_s = settings.db_statement_timeout_s
    engine = make_engine(
        settings.sqlalchemy_url, pool_size=pool_size, statement_timeout_s=timeout_s
    )
    read_engine = make_read_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size,
        app="bloghub-reads",
        statement_timeout_s=timeout_s,
    )
    redis = make_redis(settings.redis_url.get_secret_value())
    wire = Wire(settings.redis_url.get_secret_value())
    event_log = EventLog.from_settings(settings)
    await event_log.start()
    lookups = await Lookups.open(
        settings.asyncpg_dsn, size=10, app="bloghub-checks", statement_timeout_s=timeout_s
    )
    hasher = PasswordHasher(settings.password_hash_scheme)
    tokens = token_service(settings)
    lag = LagReader(settings.kafka_bootstrap, settings.prefix)
    letters = DeadLetterView(
        bootstrap=settings.kafka_bootstrap,
        prefix=settings.prefix,
        partitions=settings.topic_partitions,
    )
    presence = Presence(redis, prefix=settings.prefix, ttl_s=settings.live_presence_ttl_s)
    ops = OpsMonitor(
        config=MonitorConfig(
            prefix=settings.prefix,
            window_s=settings.ops_state_window_s,
        ),
        redis=redis,
        engine=engine,
        lag=lag,
        letters=letters,
        history=History(redis, prefix=settings.prefix, keep_s=settings.ops_history_s),
        presence=presence,
    )
    limiter = SlidingWindowLimiter(redis, settings.prefix, wire=wire)
    sessions = SessionStore(redis, prefix=settings.prefix)
    search = make_opensearch(
        settings.opensearch_url, timeout_s=SEARCH_TIMEOUT_S, retry_on_timeout=False
    )
    return Container(
        settings=settings,
        engine=engine,
        read_engine=read_engine,
        redis=redis,
        wire=wire,
        event_log=event_log,
        commands=CommandDeps(
            event_log=event_log,
            reservations=Reservations(engine, lookups),
            hasher=hasher,
            tokens=tokens,
            sessions=sessions,
            presence=presence,
            after_append=AfterAppend(
                tries=settings.after_write_tries, wait_s=settings.after_write_wait_s
            ),
            keys=UserKeys(
                engine,
                master_key(settings),
                checks=lookups,
            ),
        ),
        tokens=tokens,
        progress=Progress(
            read_engine,
            prefix=settings.prefix,
            generations_ttl_s=settings.generations_poll_s,
            engines=Engines(partial(migrated_store, statement_timeout_s=timeout_s)),
        ),
        own_writes=OwnWrites(
            redis, prefix=settings.prefix, ttl_s=settings.own_write_ttl_s, wire=wire
        ),
        positions=PositionSigner(settings.position_secret.get_secret_value()),
        log_ends=LogEnds(settings.kafka_bootstrap, client_id=f"{settings.prefix}.log-ends"),
        ops=ops,
        lockout=LoginLockout(
            redis,
            prefix=settings.prefix,
            pair_threshold=settings.login_failures_per_account_ip,
            ip_threshold=settings.login_failures_per_ip,
            account_threshold=settings.login_failures_per_account,
            first_delay_s=settings.login_delay_first_s,
            max_delay_s=settings.login_delay_max_s,
            known_for_s=settings.login_known_address_days * 24 * 3600,
            names_key=names_key(settings.reader_hash_secret.get_secret_value()),
        ),
        password_checks=FailureLimit(
            redis,
            prefix=settings.prefix,
            name="password_check",
            threshold=settings.phone_bind_password_failures,
        ),
        operator_checks=FailureLimit(
            redis,
            prefix=settings.prefix,
            name="ops_auth",
            threshold=settings.ops_token_failures_per_minute,
            window_s=60,
            lock_s=60,
            # The dashboard is needed most while Redis is down: its door counts here then.
            fallback=LocalFailures(
                threshold=settings.ops_token_failures_per_minute, window_s=60, lock_s=60
            ),
        ),
        cache=Cache(redis, prefix=settings.prefix, enabled=settings.cache_enabled),
        hot=LocalTier(
            max_entries=settings.local_cache_entries if settings.cache_enabled else 0,
            max_bytes=settings.local_cache_bytes,
            ttl_s=settings.local_cache_ttl_s,
        ),
        wechat=build_wechat(settings),
        limiter=limiter,
        sms=build_sms(settings, redis=redis, engine=engine, limiter=limiter),
        ranking=HotRanking(redis, prefix=settings.prefix, check_s=settings.ranking_check_s),
        live=build_live(settings, redis, sessions, presence),
        _ops_readers=(lag, letters),
        search=search,
        search_views=Views(search),
        reads=ReadBuffer(
            event_log,
            batch=settings.read_batch,
            flush_every_s=settings.read_flush_s,
            max_pending=settings.read_max_pending,
            repeat_s=settings.read_repeat_s,
        ),
        counters=CounterCache(redis, prefix=settings.prefix),
        lookups=lookups,
        ops_logins_local=LocalLimiter(settings.ops_login_per_minute, 60.0),
    )


def build_live(
    settings: Settings, redis: Redis, sessions: SessionStore, presence: Presence
) -> LiveHub:
    return LiveHub(
        redis,
        prefix=settings.prefix,
        presence=presence,
        sessions=sessions,
        config=LiveConfig(
            ping_interval_s=settings.live_ping_interval_s,
            presence_ttl_s=settings.live_presence_ttl_s,
            auth_timeout_s=settings.live_auth_timeout_s,
            connections_per_user=settings.live_connections_per_user,
            signing_in_per_address=settings.live_signing_in_per_address,
            max_message_bytes=settings.live_max_message_bytes,
            queue_max=settings.live_queue_max,
        ),
    )


def token_service(settings: Settings) -> TokenService:
    return TokenService(
        access_secret=settings.access_token_secret.get_secret_value(),
        refresh_secret=settings.refresh_token_secret.get_secret_value(),
        policy=TokenPolicy(
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            access_ttl_s=settings.access_token_ttl_s,
            refresh_ttl_s=settings.refresh_token_ttl_s,
            session_lifetime_s=settings.session_lifetime_s,
        ),
    )


async def prepare_topics(settings: Settings) -> None:
    await ensure_topics(
        settings.kafka_bootstrap,
        settings.prefix,
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
    )
