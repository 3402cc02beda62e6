"""The Postgres outbox for SMS no provider took, and the worker that retries it.

Once a message is sent, given up or past its ``expires_at``, its text (a login code, as
a rule) is erased: the row stays for the record, the secret does not.

A claim is one short transaction: due rows are picked with ``FOR UPDATE SKIP LOCKED`` (so
any number of workers share the table without waiting on each other), their try is
counted and their next try pushed ``spacing_s`` ahead, then the transaction commits and
the sending happens outside it. A worker that dies mid-send has already spent that try
and its row comes due again after the spacing, so the bounds hold whatever happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Interval, Row, and_, case, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import BindParameter

from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.sms_tables import sms_outbox
from bloghub.auth.limiter import Throttle
from bloghub.auth.sms.failover import AllProvidersFailed, Failover
from bloghub.auth.sms.phones import mask_phone
from bloghub.errors import Transient, Unavailable
from bloghub.logs import SELDOM

log = structlog.get_logger(__name__)
o = sms_outbox.c
ERASED = ""  # what a delivered, failed or expired message's text becomes


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    phone: str
    text: str
    status: str
    attempts: int
    last_error: str | None
    provider: str | None
    sent_at: datetime | None


class OutboxStore:
    def __init__(
        self, engine: AsyncEngine, *, max_attempts: int = 3, spacing_s: float = 60.0
    ) -> None:
        if max_attempts < 1 or spacing_s < 0:
            raise ValueError("max_attempts must be >= 1 and spacing_s >= 0")
        self._engine = engine
        self.max_attempts = max_attempts
        self.spacing_s = spacing_s

    async def enqueue(
        self,
        phone: str,
        text: str,
        *,
        reason: str,
        delay_s: float = 0.0,
        expires_in_s: float | None = None,
    ) -> int:
        """Keep a message for the worker; its first try is due in ``delay_s`` seconds, and
        it is not sent at all after ``expires_in_s`` (never expires if None)."""
        expires = None if expires_in_s is None else func.now() + _after(expires_in_s)
        stmt = (
            insert(sms_outbox)
            .values(
                phone=phone,
                text=text,
                last_error=reason,
                next_attempt_at=func.now() + _after(delay_s),
                expires_at=expires,
            )
            .returning(o.id)
        )
        async with translated(), self._engine.begin() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def expire(self) -> int:
        """Give up pending messages past their expiry; how many were given up."""
        stmt = (
            update(sms_outbox)
            .where(o.status == "pending", o.expires_at <= func.now())
            .values(status="expired", text=ERASED)
        )
        async with translated(), self._engine.begin() as conn:
            return int((await conn.execute(stmt)).rowcount)

    async def claim(self, limit: int) -> list[OutboxMessage]:
        live = or_(o.expires_at.is_(None), o.expires_at > func.now())
        due = (
            select(o.id)
            .where(and_(o.status == "pending", o.next_attempt_at <= func.now(), live))
            .order_by(o.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(sms_outbox)
            .where(o.id.in_(due))
            .values(attempts=o.attempts + 1, next_attempt_at=func.now() + _after(self.spacing_s))
            .returning(*sms_outbox.c)
        )
        async with translated(), self._engine.begin() as conn:
            return [_message(row) for row in await conn.execute(stmt)]

    async def mark_sent(self, message_id: int, provider: str) -> None:
        values = {"status": "sent", "sent_at": func.now(), "provider": provider, "text": ERASED}
        await self._update(message_id, values)

    async def mark_failed(self, message_id: int, error: str) -> None:
        """Record a failed try; the message is given up once it has had every try.

        The next try is pushed ``spacing_s`` past the failure too, not only past the
        claim: a slow send would otherwise leave the provider less than the spacing
        between one try reaching it and the next."""
        last = o.attempts >= self.max_attempts
        values = {
            "last_error": error,
            "next_attempt_at": func.now() + _after(self.spacing_s),
            "status": case((last, "failed"), else_="pending"),
            "text": case((last, ERASED), else_=o.text),
        }
        await self._update(message_id, values)

    async def defer(self, message_id: int, delay_s: float) -> None:
        """Put a claimed message back untried (held by the rate, not failed)."""
        values = {"attempts": o.attempts - 1, "next_attempt_at": func.now() + _after(delay_s)}
        await self._update(message_id, values)

    async def get(self, message_id: int) -> OutboxMessage | None:
        async with translated(), self._engine.connect() as conn:
            row = (await conn.execute(select(sms_outbox).where(o.id == message_id))).one_or_none()
        return None if row is None else _message(row)

    async def _update(self, message_id: int, values: Mapping[str, object]) -> None:
        async with translated(), self._engine.begin() as conn:
            await conn.execute(update(sms_outbox).where(o.id == message_id).values(values))


def _after(seconds: float) -> BindParameter[timedelta]:
    return literal(timedelta(seconds=seconds), Interval())


def _message(row: Row[Any]) -> OutboxMessage:
    m = row._mapping
    return OutboxMessage(
        m["id"], m["phone"], m["text"], m["status"], m["attempts"], m["last_error"],
        m["provider"], m["sent_at"],
    )  # fmt: skip


async def deliver_due(
    store: OutboxStore, failover: Failover, *, throttle: Throttle | None = None, batch: int = 20
) -> int:
    """One pass: claim due messages and try each once. Returns how many were claimed."""
    expired = await store.expire()
    if expired:
        log.info("sms_outbox.expired", count=expired)
    claimed = await store.claim(batch)
    for message in claimed:
        bound = log.bind(outbox_id=message.id, phone=mask_phone(message.phone))
        if throttle is not None:
            try:
                decision = await throttle.take()
            except Unavailable:
                bound.warning("sms_outbox.rate_unknown")  # send anyway: Redis is down
            else:
                if not decision.allowed:
                    await store.defer(message.id, decision.retry_after_s)
                    continue
        try:
            provider = await failover.send(message.phone, message.text)
        except AllProvidersFailed as exc:
            await store.mark_failed(message.id, str(exc)[:1000])
            bound.warning("sms_outbox.try_failed", attempt=message.attempts, error=str(exc))
            continue
        await store.mark_sent(message.id, provider)
        bound.info("sms_outbox.sent", attempt=message.attempts, provider=provider)
    return len(claimed)


async def run_outbox_worker(
    store: OutboxStore,
    failover: Failover,
    *,
    stop: asyncio.Event,
    throttle: Throttle | None = None,
    poll_s: float = 1.0,
    batch: int = 20,
) -> None:
    """Retry outbox messages until ``stop`` is set; a full batch is followed at once."""
    while not stop.is_set():
        claimed = 0
        try:
            claimed = await deliver_due(store, failover, throttle=throttle, batch=batch)
        except (Transient, Unavailable) as exc:
            if (left_out := SELDOM.due("sms_outbox.pass_failed")) is not None:
                log.warning("sms_outbox.pass_failed", error=repr(exc), left_out=left_out)
        if claimed >= batch:
            continue
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_s)
        except TimeoutError:
            continue
