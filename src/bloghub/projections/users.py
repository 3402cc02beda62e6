"""The users projector: the users read model, and confirmation of email reservations."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from sqlalchemy import DateTime, Text, select
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.bulk import unnest_source
from bloghub.adapters.postgres.reservations import confirm_many
from bloghub.adapters.postgres.tables import users
from bloghub.events.base import Recorded
from bloghub.events.topics import Family
from bloghub.events.users import UserRegistered
from bloghub.projections.postgres_sink import PostgresProjector

_rows = unnest_source(
    {
        "id": UUID(as_uuid=False),
        "email": Text(),
        "password_hash": Text(),
        "at": DateTime(timezone=True),
    }
)
_REGISTERED = (
    insert(users)
    .from_select(
        ["id", "email", "password_hash", "created_at", "updated_at"],
        select(_rows.c.id, _rows.c.email, _rows.c.password_hash, _rows.c.at, _rows.c.at),
    )
    .on_conflict_do_nothing(index_elements=["id"])
)


class UsersProjector(PostgresProjector):
    name = "users"
    families: tuple[Family, ...] = (Family.USERS,)

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        # Runs of one event type become one statement; order across types is kept.
        for event_type, run in groupby(records, key=lambda r: type(r.event)):
            if event_type is UserRegistered:
                await self._registered(conn, list(run))

    async def _registered(self, conn: AsyncConnection, records: list[Recorded]) -> None:
        events = [(rec.event, rec.envelope.occurred_at) for rec in records]
        registered = [(ev, at) for ev, at in events if isinstance(ev, UserRegistered)]
        await conn.execute(
            _REGISTERED,
            {
                "id": [ev.user_id for ev, _ in registered],
                "email": [ev.email for ev, _ in registered],
                "password_hash": [ev.password_hash for ev, _ in registered],
                "at": [at for _, at in registered],
            },
        )
        await confirm_many(conn, [("email", ev.email, ev.user_id) for ev, _ in registered])
