"""What every command handler receives: who asks, for which request, and the ports it may use."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import structlog

from bloghub.adapters.postgres.reservations import Reservations
from bloghub.adapters.postgres.user_keys import UserKeys
from bloghub.adapters.redis.presence import Presence
from bloghub.adapters.redis.sessions import SessionStore
from bloghub.auth.passwords import PasswordHasher
from bloghub.auth.tokens import TokenService
from bloghub.commands.after_append import AfterAppend, Step
from bloghub.events.base import Event, envelop
from bloghub.events.log import EventLog, HandedOver, NotRecorded
from bloghub.events.personal import seal_event
from bloghub.events.position import Position
from bloghub.events.users import PersonalEvent

log = structlog.get_logger(__name__)

Key = tuple[str, str, str]  # kind, value, owner


@dataclass(frozen=True, slots=True)
class Caller:
    actor_id: str | None
    request_id: str | None
    # The erasure check of ``actor_id`` when the API started it early, beside the rate
    # limit's round trip (api/rate_limit.py), so a write does not wait for it after its
    # other reads; None: it is asked when the write is recorded.
    not_erased: asyncio.Future[None] | None = None


@dataclass(frozen=True, slots=True)
class CommandDeps:
    event_log: EventLog
    reservations: Reservations
    hasher: PasswordHasher
    tokens: TokenService
    sessions: SessionStore
    keys: UserKeys
    presence: Presence
    after_append: AfterAppend = field(default_factory=AfterAppend)

    async def record_holding(
        self,
        caller: Caller,
        key: Key,
        *events: Event,
        settled_first: bool = True,
        at: datetime | None = None,
        settling: list[asyncio.Task[None]] | None = None,
    ) -> Position:
        """Record ``events`` that need the reserved ``key``. From the moment the producer
        has them, the log alone decides the key: confirmed when they are recorded, freed
        when they surely are not, held (until the sweeper, past the producer's delivery
        bound) when that cannot be known. So a late write never finds its key given to
        someone else, and a key is never freed while its event may still land.

        The answer waits for the key to be confirmed (``settled_first``) when a reader
        needs the position the index then holds (a login by an email not yet projected);
        a key that is read for its holder alone (a slug) is confirmed after the answer.
        ``settling`` gathers the steps that settle the key, for a caller that must know
        when its fate is in the index."""
        return await self.record_holding_all(
            caller, (key,), *events, settled_first=settled_first, at=at, settling=settling
        )

    async def record_holding_all(
        self,
        caller: Caller,
        keys: Sequence[Key],
        *events: Event,
        settled_first: bool = True,
        at: datetime | None = None,
        settling: list[asyncio.Task[None]] | None = None,
    ) -> Position:
        """``record_holding`` for events that need several reserved keys at once (an
        account's email and username, an article's version and new slug)."""
        outcomes: list[asyncio.Future[Position]] = []
        settling = [] if settling is None else settling

        def handed_over(outcome: asyncio.Future[Position]) -> None:
            outcomes.append(outcome)
            for key in keys:
                step = self.after_append.start(
                    "settle_key",
                    partial(self._settle, key, outcome),
                    kind=key[0],
                    owner=key[2],
                )
                settling.append(step)

        try:
            position = await self.record(caller, *events, handed_over=handed_over, at=at)
        except BaseException:
            if not outcomes:  # nothing reached the producer: nothing can land
                for key in keys:
                    await self.reservations.release(*key)
            elif outcomes[0].done():
                # The log said no: let the keys be free before the caller hears "retry".
                await asyncio.wait(settling, timeout=self.after_append.wait_s)
            raise
        if settling and settled_first:  # none when there was nothing to record
            await asyncio.wait(settling, timeout=self.after_append.wait_s)
        return position

    async def _settle(self, key: Key, outcome: asyncio.Future[Position]) -> None:
        try:
            position = await outcome
        except NotRecorded:
            await self.reservations.release(*key)
            return
        except Exception as exc:
            # The producer gave up, yet an earlier try may have landed: freeing the key now
            # could give it to someone else while this event holds it in the log.
            log.warning("reservations.held_until_swept", kind=key[0], owner=key[2], error=repr(exc))
            return
        await self.reservations.confirm(*key, position.encode())

    async def after(self, what: str, step: Step, **context: object) -> None:
        """A step that follows a recorded write (freeing a key given up, say): retried off
        the request path, never an error in the caller's answer."""
        await self.after_append.run(what, step, **context)

    async def record(
        self,
        caller: Caller,
        *events: Event,
        handed_over: HandedOver | None = None,
        at: datetime | None = None,
    ) -> Position:
        """Append ``events``, sealed and enveloped. ``at``: when they happened, for a command
        whose answer shows it (its next read then shows the same time); now if not given."""
        # An erased account writes nothing more, however far the projectors lag (its
        # sessions end only once the users projector applies the erasure). Sealing looks
        # the key up, and refuses, for the users it seals for; anyone else is asked here.
        keyed = {e.user_id for e in events if isinstance(e, PersonalEvent)}
        if caller.actor_id is not None and caller.actor_id not in keyed:
            if caller.not_erased is not None:
                await caller.not_erased
            else:
                await self.keys.refuse_erased(caller.actor_id)
        sealed = [await self._sealed(e) for e in events]
        envelopes = [
            envelop(e, actor_id=caller.actor_id, request_id=caller.request_id, occurred_at=at)
            for e in sealed
        ]
        return await self.event_log.append(envelopes, handed_over=handed_over)

    async def _sealed(self, event: Event) -> Event:
        """Personal data goes to the log only sealed under its user's key (crypto-shredding);
        an erased user has no key, so nothing more is written for them."""
        if not isinstance(event, PersonalEvent):
            return event
        return seal_event(event, await self.keys.key_for(event.user_id))
