"""The users projector: accounts, profiles and sessions, and the user-info cache it owns."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any, cast

from sqlalchemy import DateTime, Text, literal, null, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.bulk import unnest_source
from bloghub.adapters.postgres.reservations import confirm_keys_from, confirm_many
from bloghub.adapters.postgres.tables import sessions, users
from bloghub.events.base import Event, Recorded
from bloghub.events.topics import Family
from bloghub.events.users import (
    PasswordChanged,
    PhoneBound,
    ProfileUpdated,
    SessionRefreshed,
    SessionRevoked,
    SessionStarted,
    UserRegistered,
    UserRegisteredByPhone,
    UserRegisteredByWeChat,
)
from bloghub.projections.postgres_sink import PostgresProjector
from bloghub.readmodels import user_info_key

_rows = unnest_source(
    {
        "id": UUID(as_uuid=False),
        "email": Text(),
        "password_hash": Text(),
        "at": DateTime(timezone=True),
    }
)
_registrations = select(_rows.c.id, _rows.c.email, _rows.c.password_hash, _rows.c.at).cte(
    "registrations"
)
_new_users = (
    insert(users)
    .from_select(
        ["id", "email", "password_hash", "created_at", "updated_at"],
        select(
            _registrations.c.id,
            _registrations.c.email,
            _registrations.c.password_hash,
            _registrations.c.at,
            _registrations.c.at,
        ),
    )
    .on_conflict_do_nothing(index_elements=["id"])
    .cte("new_users")
)
# Registrations come in bulk (imports, replays): one constant statement per batch makes the
# accounts and confirms their emails, the arrays sent once.
REGISTER_USERS = confirm_keys_from(
    select(
        literal("email", Text()),
        _registrations.c.email,
        sql_cast(_registrations.c.id, Text()),
        null(),
    )
).add_cte(_new_users)


class UsersProjector(PostgresProjector):
    """Each event sets its own account's email, phone or WeChat id and touches no other
    account. Two accounts' events are applied in any order (partitions, lanes), so the read
    model may name one key on two accounts, say B's new phone before A's move off it; the
    write-side index alone says who holds a key. Taking the key from its previous holder on
    apply would not do: a late registration of A would take it back from B for good."""

    name = "users"
    families: tuple[Family, ...] = (Family.USERS,)

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        # Runs of one event type become one statement where it pays; order is kept.
        for event_type, run in groupby(records, key=lambda r: type(r.event)):
            batch = list(run)
            if event_type is UserRegistered:
                await self._registered(conn, batch)
            else:
                for rec in batch:
                    await self._one(conn, rec.event, rec)

    def stale_cache_keys(self, records: Sequence[Recorded]) -> set[str]:
        if self.cache is None:
            return set()
        # A brand-new account has nothing cached yet (misses are not cached).
        return {
            user_info_key(self.cache, rec.envelope.aggregate_id)
            for rec in records
            if not isinstance(rec.event, UserRegistered)
        }

    async def _registered(self, conn: AsyncConnection, records: list[Recorded]) -> None:
        # Columns by comprehension: this is the hot path of every replay. handle() groups
        # runs by exact type, so every event here is a UserRegistered.
        events = cast(list[UserRegistered], [rec.event for rec in records])
        ids = [ev.user_id for ev in events]
        emails = [ev.email for ev in events]
        hashes = [ev.password_hash for ev in events]
        ats = [rec.envelope.occurred_at for rec in records]
        await conn.execute(
            REGISTER_USERS, {"id": ids, "email": emails, "password_hash": hashes, "at": ats}
        )

    async def _one(self, conn: AsyncConnection, ev: Event, rec: Recorded) -> None:
        at = rec.envelope.occurred_at
        match ev:
            case UserRegisteredByPhone():
                await self._new_user(conn, ev.user_id, at, phone=ev.phone)
                await confirm_many(conn, [("phone", ev.phone, ev.user_id)])
            case UserRegisteredByWeChat():
                await self._new_user(
                    conn, ev.user_id, at, wechat_openid=ev.openid, wechat_unionid=ev.unionid
                )
                await confirm_many(conn, [("wechat", ev.openid, ev.user_id)])
            case PasswordChanged():
                await self._set_user(conn, ev.user_id, at, password_hash=ev.password_hash)
                ends = update(sessions).where(
                    sessions.c.user_id == ev.user_id, sessions.c.revoked_at.is_(None)
                )
                if ev.keep_session_id is not None:
                    ends = ends.where(sessions.c.id != ev.keep_session_id)
                await conn.execute(ends.values(revoked_at=at, revoke_reason="password_changed"))
            case ProfileUpdated():
                await self._set_user(
                    conn, ev.user_id, at, **{f: getattr(ev, f) for f in ev.changed}
                )
            case PhoneBound():
                await self._set_user(conn, ev.user_id, at, phone=ev.phone)
                await confirm_many(conn, [("phone", ev.phone, ev.user_id)])
            case SessionStarted():
                await conn.execute(
                    insert(sessions)
                    .values(
                        id=ev.session_id,
                        user_id=ev.user_id,
                        method=ev.method,
                        ua_hash=ev.ua_hash,
                        refresh_jti=ev.refresh_jti,
                        started_at=at,
                    )
                    .on_conflict_do_nothing(index_elements=["id"])
                )
            case SessionRefreshed():
                await conn.execute(
                    update(sessions)
                    .where(sessions.c.id == ev.session_id)
                    .values(refresh_jti=ev.refresh_jti, refreshed_at=at)
                )
            case SessionRevoked():
                await conn.execute(
                    update(sessions)
                    .where(sessions.c.id == ev.session_id, sessions.c.revoked_at.is_(None))
                    .values(revoked_at=at, revoke_reason=ev.reason)
                )

    async def _new_user(self, conn: AsyncConnection, user_id: str, at: Any, **values: Any) -> None:
        await conn.execute(
            insert(users)
            .values(id=user_id, created_at=at, updated_at=at, **values)
            .on_conflict_do_nothing(index_elements=["id"])
        )

    async def _set_user(self, conn: AsyncConnection, user_id: str, at: Any, **values: Any) -> None:
        await conn.execute(
            update(users).where(users.c.id == user_id).values(updated_at=at, **values)
        )
