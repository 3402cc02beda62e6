"""What every command handler receives: who asks, for which request, and the ports it may use."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bloghub.adapters.postgres.reservations import Reservations
from bloghub.adapters.redis.sessions import SessionStore
from bloghub.auth.passwords import PasswordHasher
from bloghub.auth.tokens import TokenService
from bloghub.events.base import Event, envelop
from bloghub.events.log import EventLog, Indeterminate
from bloghub.events.position import Position


@dataclass(frozen=True, slots=True)
class Caller:
    actor_id: str | None
    request_id: str | None


@dataclass(frozen=True, slots=True)
class CommandDeps:
    event_log: EventLog
    reservations: Reservations
    hasher: PasswordHasher
    tokens: TokenService
    sessions: SessionStore
    settling: set[asyncio.Task[None]] = field(default_factory=set)

    async def record_holding(
        self, caller: Caller, key: tuple[str, str, str], *events: Event
    ) -> Position:
        """Record ``events`` that need the reserved ``key`` (kind, value, owner): confirmed
        when they are recorded, released when they surely are not. When the log cannot say
        in time, the key stays held until it does (or the sweeper frees it), so a late
        write never finds its key given to someone else."""
        kind, value, owner = key
        try:
            position = await self.record(caller, *events)
        except Indeterminate as unsure:
            task = asyncio.create_task(self._settle(key, unsure.outcome))
            self.settling.add(task)
            task.add_done_callback(self.settling.discard)
            raise
        except BaseException:
            await self.reservations.release(kind, value, owner)
            raise
        await self.reservations.confirm(kind, value, owner, position.encode())
        return position

    async def _settle(self, key: tuple[str, str, str], outcome: asyncio.Future[Position]) -> None:
        kind, value, owner = key
        try:
            position = await outcome
        except Exception:
            await self.reservations.release(kind, value, owner)
            return
        await self.reservations.confirm(kind, value, owner, position.encode())

    async def record(self, caller: Caller, *events: Event) -> Position:
        envelopes = [
            envelop(e, actor_id=caller.actor_id, request_id=caller.request_id) for e in events
        ]
        return await self.event_log.append(envelopes)
