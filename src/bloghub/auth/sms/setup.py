"""Building the SMS pieces from settings: codes and their guard, providers, failover, the
global rate, the outbox."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.auth.hidden_names import names_key
from bloghub.auth.limiter import SlidingWindowLimiter, Throttle
from bloghub.auth.sms.codes import SmsCodes
from bloghub.auth.sms.failover import Failover, make_failover
from bloghub.auth.sms.guard import SmsGuard
from bloghub.auth.sms.outbox import OutboxStore, run_outbox_worker
from bloghub.auth.sms.providers import ConsoleProvider, HttpProvider, SmsProvider
from bloghub.auth.sms.sender import SmsSender
from bloghub.settings import Settings


@dataclass(frozen=True)
class Sms:
    codes: SmsCodes
    guard: SmsGuard
    sender: SmsSender
    failover: Failover
    outbox: OutboxStore
    throttle: Throttle
    http: httpx.AsyncClient
    poll_s: float

    async def run_worker(self, stop: asyncio.Event) -> None:
        await run_outbox_worker(
            self.outbox, self.failover, stop=stop, throttle=self.throttle, poll_s=self.poll_s
        )

    async def close(self) -> None:
        await self.http.aclose()


def build_sms(
    settings: Settings, *, redis: Redis, engine: AsyncEngine, limiter: SlidingWindowLimiter
) -> Sms:
    http = httpx.AsyncClient()
    token = settings.sms_gateway_token
    providers: list[SmsProvider] = [
        HttpProvider(
            name=f"gateway-{i + 1}",
            url=url,
            client=http,
            bearer_token=token.get_secret_value() if token else None,
            timeout_s=settings.sms_timeout_s,
        )
        for i, url in enumerate(settings.sms_gateways)
    ] or [ConsoleProvider()]
    failover = make_failover(
        settings.sms_failover, providers, timeouts_to_switch=settings.sms_timeouts_to_switch
    )
    outbox = OutboxStore(engine, spacing_s=settings.sms_retry_spacing_s)
    throttle = Throttle(limiter, "sms:global", settings.sms_rate_limit, settings.sms_rate_window_s)
    return Sms(
        codes=SmsCodes(
            redis,
            settings.prefix,
            cooldown_s=settings.sms_code_cooldown_s,
            per_day=settings.sms_codes_per_phone_per_day,
            names_key=names_key(settings.reader_hash_secret.get_secret_value()),
        ),
        guard=SmsGuard(
            limiter,
            sends_per_ip_per_hour=settings.sms_codes_per_ip_per_hour,
            checks_per_ip_per_hour=settings.sms_checks_per_ip_per_hour,
            country_codes=settings.sms_country_codes,
        ),
        sender=SmsSender(failover, outbox, throttle=throttle),
        failover=failover,
        outbox=outbox,
        throttle=throttle,
        http=http,
        poll_s=settings.sms_worker_poll_s,
    )
