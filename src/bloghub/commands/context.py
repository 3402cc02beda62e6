"""What every command handler receives: who asks, for which request, and the ports it may use."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bloghub.adapters.postgres.reservations import Reservations
from bloghub.adapters.postgres.user_keys import UserKeys
from bloghub.auth.passwords import PasswordHasher
from bloghub.auth.tokens import TokenService
from bloghub.events.base import Event, envelop
from bloghub.events.log import EventLog, Indeterminate
from bloghub.events.personal import seal_event
from bloghub.events.position import Position
from bloghub.events.users import PersonalEvent


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
    keys: UserKeys
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
        # An erased account writes nothing more, however far the projectors lag (its
        # sessions end only once the users projector applies the erasure). Sealing looks
        # the key up, and refuses, for the users it seals for; anyone else is asked here.
        keyed = {e.user_id for e in events if isinstance(e, PersonalEvent)}
        if caller.actor_id is not None and caller.actor_id not in keyed:
            await self.keys.refuse_erased(caller.actor_id)
        sealed = [await self._sealed(e) for e in events]
        envelopes = [
            envelop(e, actor_id=caller.actor_id, request_id=caller.request_id) for e in sealed
        ]
        return await self.event_log.append(envelopes)

    async def _sealed(self, event: Event) -> Event:
        """Personal data goes to the log only sealed under its user's key (crypto-shredding);
        an erased user has no key, so nothing more is written for them."""
        if not isinstance(event, PersonalEvent):
            return event
        return seal_event(event, await self.keys.key_for(event.user_id))
