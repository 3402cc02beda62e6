"""The composition root: every client is built here at start-up and handed on explicitly."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

import bloghub.events.users  # noqa: F401  (registers the users family's event types)
from bloghub.adapters.kafka import ensure_topics
from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.reservations import Reservations
from bloghub.adapters.redis import make_redis
from bloghub.api.consistency import OwnWrites, Progress
from bloghub.auth.passwords import PasswordHasher
from bloghub.auth.tokens import TokenService
from bloghub.commands.context import CommandDeps
from bloghub.events.base import registry
from bloghub.events.log import EventLog
from bloghub.logs import configure_logging
from bloghub.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    event_log: EventLog
    commands: CommandDeps
    tokens: TokenService
    progress: Progress
    own_writes: OwnWrites

    async def close(self) -> None:
        await self.event_log.close()
        await self.redis.aclose()
        await self.engine.dispose()


async def build(settings: Settings, *, pool_size: int = 10) -> Container:
    configure_logging(settings)
    engine = make_engine(settings.sqlalchemy_url, pool_size=pool_size)
    redis = make_redis(settings.redis_url.get_secret_value())
    event_log = EventLog(
        bootstrap=settings.kafka_bootstrap,
        prefix=settings.prefix,
        registry=registry,
        timeout_s=settings.append_timeout_s,
    )
    await event_log.start()
    hasher = PasswordHasher(settings.password_hash_scheme)
    return Container(
        settings=settings,
        engine=engine,
        redis=redis,
        event_log=event_log,
        commands=CommandDeps(event_log=event_log, reservations=Reservations(engine), hasher=hasher),
        tokens=TokenService(
            access_secret=settings.access_token_secret.get_secret_value(),
            refresh_secret=settings.refresh_token_secret.get_secret_value(),
            access_ttl_s=settings.access_token_ttl_s,
            refresh_ttl_s=settings.refresh_token_ttl_s,
        ),
        progress=Progress(engine, prefix=settings.prefix),
        own_writes=OwnWrites(redis, prefix=settings.prefix, ttl_s=settings.own_write_ttl_s),
    )


async def prepare_topics(settings: Settings) -> None:
    await ensure_topics(
        settings.kafka_bootstrap,
        settings.prefix,
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
    )
