"""What every command handler receives: who asks, for which request, and the ports it may use."""

from __future__ import annotations

from dataclasses import dataclass

from bloghub.adapters.postgres.reservations import Reservations
from bloghub.auth.passwords import PasswordHasher
from bloghub.auth.tokens import TokenService
from bloghub.events.base import Event, envelop
from bloghub.events.log import EventLog
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

    async def record(self, caller: Caller, *events: Event) -> Position:
        envelopes = [
            envelop(e, actor_id=caller.actor_id, request_id=caller.request_id) for e in events
        ]
        return await self.event_log.append(envelopes)
