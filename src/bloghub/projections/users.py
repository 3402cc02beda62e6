"""The users projector: the users read model, and confirmation of email reservations."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.reservations import confirm_many
from bloghub.adapters.postgres.tables import users
from bloghub.events.base import Recorded
from bloghub.events.topics import Family
from bloghub.events.users import UserRegistered
from bloghub.projections.postgres_sink import PostgresProjector


class UsersProjector(PostgresProjector):
    name = "users"
    families: tuple[Family, ...] = (Family.USERS,)

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        # Runs of one event type become one statement; order across types is kept.
        for event_type, run in groupby(records, key=lambda r: type(r.event)):
            if event_type is UserRegistered:
                await self._registered(conn, list(run))

    async def _registered(self, conn: AsyncConnection, records: list[Recorded]) -> None:
        rows, keys = [], []
        for rec in records:
            ev = rec.event
            assert isinstance(ev, UserRegistered)
            at = rec.envelope.occurred_at
            rows.append(
                {
                    "id": ev.user_id,
                    "email": ev.email,
                    "password_hash": ev.password_hash,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            keys.append(("email", ev.email, ev.user_id))
        await conn.execute(insert(users).values(rows).on_conflict_do_nothing(index_elements=["id"]))
        await confirm_many(conn, keys)
