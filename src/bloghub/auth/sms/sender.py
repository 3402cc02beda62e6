"""Sending one SMS now if the global rate and a provider allow, else through the outbox."""

from __future__ import annotations

from enum import StrEnum

import structlog

from bloghub.auth.limiter import Throttle
from bloghub.auth.sms.failover import AllProvidersFailed, Failover
from bloghub.auth.sms.outbox import OutboxStore
from bloghub.auth.sms.phones import mask_phone, normalise_phone
from bloghub.errors import Unavailable

log = structlog.get_logger(__name__)


class Delivery(StrEnum):
    SENT = "sent"  # a provider took it (the API answers 200)
    QUEUED = "queued"  # the outbox holds it for the worker (the API answers 202)


class SmsSender:
    def __init__(
        self, failover: Failover, outbox: OutboxStore, *, throttle: Throttle | None = None
    ) -> None:
        self._failover = failover
        self._outbox = outbox
        self._throttle = throttle

    async def send(self, phone: str, text: str, *, valid_for_s: float | None = None) -> Delivery:
        """Deliver ``text`` to ``phone`` now, or keep it for the outbox worker, which gives
        it up once ``valid_for_s`` has passed (a login code that expired is worth nothing).

        ``ValueError`` for a number that is not a phone; ``Unavailable`` only when the
        message could neither be sent nor stored.
        """
        phone = normalise_phone(phone)
        bound = log.bind(phone=mask_phone(phone))
        held_for = await self._held_for(bound)
        if held_for is not None:
            await self._outbox.enqueue(
                phone, text, reason="throttled", delay_s=held_for, expires_in_s=valid_for_s
            )
            bound.info("sms.queued", reason="throttled", retry_after_s=held_for)
            return Delivery.QUEUED
        try:
            provider = await self._failover.send(phone, text)
        except AllProvidersFailed as exc:
            delay = self._outbox.spacing_s
            await self._outbox.enqueue(
                phone, text, reason=str(exc)[:1000], delay_s=delay, expires_in_s=valid_for_s
            )
            bound.warning("sms.queued", reason="all_providers_failed", error=str(exc))
            return Delivery.QUEUED
        bound.info("sms.delivered", provider=provider)
        return Delivery.SENT

    async def _held_for(self, bound: structlog.typing.FilteringBoundLogger) -> int | None:
        """Seconds the global rate holds this message back, or None to send it now."""
        if self._throttle is None:
            return None
        try:
            decision = await self._throttle.take()
        except Unavailable:
            # Without Redis the rate is unknown; a code the user is waiting for matters
            # more than the provider quota for the length of an outage.
            bound.warning("sms.rate_unknown")
            return None
        return None if decision.allowed else decision.retry_after_s
