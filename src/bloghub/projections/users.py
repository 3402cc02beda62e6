"""The users projector: accounts, profiles and sessions, and the user-info cache it owns."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import TYPE_CHECKING, Any, Self, cast

import structlog
from sqlalchemy import DateTime, Text, bindparam, delete, exists, literal, null, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bloghub.adapters.postgres.bulk import unnest_source
from bloghub.adapters.postgres.reservations import confirm_keys_from, confirm_many
from bloghub.adapters.postgres.tables import reservations, sessions, users
from bloghub.adapters.postgres.user_keys import BatchKeys, batch_keys, shred
from bloghub.adapters.redis.cache import Cache
from bloghub.auth.sealing import MasterKey, master_key
from bloghub.events.base import Event, Recorded
from bloghub.events.personal import reveal, reveal_text
from bloghub.events.topics import Family
from bloghub.events.users import (
    PasswordChanged,
    PersonalEvent,
    PhoneBound,
    ProfileUpdated,
    SessionRefreshed,
    SessionRevoked,
    SessionStarted,
    UserErased,
    UserRegistered,
    UserRegisteredByPhone,
    UserRegisteredByWeChat,
)
from bloghub.projections.postgres_sink import PostgresProjector
from bloghub.ranking.hidden import ErasedAuthors
from bloghub.readmodels import user_info_key
from bloghub.settings import Settings

if TYPE_CHECKING:
    from bloghub.projections.stores import Stores

log = structlog.get_logger(__name__)

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
# An erased user's registration reads without its email: it confirms no key.
_emails = (
    select(_registrations.c.id, _registrations.c.email)
    .where(_registrations.c.email.is_not(None))
    .cte("emails")
)
REGISTER_USERS = confirm_keys_from(
    select(
        literal("email", Text()),
        _emails.c.email,
        sql_cast(_emails.c.id, Text()),
        null(),
    )
).add_cte(_new_users)
_held = reservations.alias("held")
_value, _owner = bindparam("value", type_=Text()), bindparam("owner_id", type_=Text())
_holds_another = exists().where(
    _held.c.kind == "phone", _held.c.owner_id == _owner, _held.c.value != _value
)
_holds_this = exists().where(
    _held.c.kind == "phone", _held.c.value == _value, _held.c.owner_id == _owner
)
# A phone's key as ``_confirm`` makes it, except that one gone is made again only for an
# account that holds no other phone: an account that holds another has moved on since
# (the command that moved it freed this one), and a projector behind it would otherwise
# give the account back a phone it gave up, and its owner's proof against that phone with
# it, until it applied the move. A key gone while the account holds no phone was swept
# before its event landed: made again, as every kind's is.
CONFIRM_PHONE = confirm_keys_from(
    select(literal("phone", Text()), _value, _owner, null()).where(
        or_(~_holds_another, _holds_this)
    )
)
_ended = sessions.c
_BORN_ENDED = (
    update(sessions)
    .where(
        _ended.id == bindparam("session", type_=UUID(as_uuid=False)),
        _ended.revoked_at.is_(None),
        exists().where(users.c.id == _ended.user_id, users.c.erased_at.is_not(None)),
    )
    .values(revoked_at=bindparam("at", type_=DateTime(timezone=True)), revoke_reason="erased")
)
# What an erasure leaves of an account: the row (their articles name it), nothing personal.
_ERASED = dict.fromkeys(
    (
        "email",
        "password_hash",
        "phone",
        "wechat_openid",
        "wechat_unionid",
        "nickname",
        "birthday",
        "about_me",
        "image",
    )
)


class UsersProjector(PostgresProjector):
    """Each event sets its own account's email, phone or WeChat id and touches no other
    account. Two accounts' events are applied in any order (partitions, lanes), so the read
    model may name one key on two accounts, say B's new phone before A's move off it; the
    write-side index alone says who holds a key. Taking the key from its previous holder on
    apply would not do: a late registration of A would take it back from B for good.

    Personal fields are read with the users' keys (``user_keys``, one query per batch).
    Where a key is gone the user reads as erased: the same on a replay as live."""

    name = "users"
    families: tuple[Family, ...] = (Family.USERS,)

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        master: MasterKey,
        generation: int = 1,
        cache: Cache | None = None,
    ) -> None:
        super().__init__(engine, generation=generation, cache=cache)
        self.master = master
        # Told of erasures before they commit (ranking/hidden.py); only the serving
        # generation tells it.
        self.ranking: ErasedAuthors | None = None

    @classmethod
    def build(
        cls, engine: AsyncEngine, settings: Settings, *, generation: int, cache: Cache | None
    ) -> Self:
        return cls(engine, master=master_key(settings), generation=generation, cache=cache)

    @classmethod
    def from_stores(cls, stores: Stores, *, generation: int) -> Self:
        projector = super().from_stores(stores, generation=generation)
        if stores.live and stores.cache is not None:
            projector.ranking = ErasedAuthors(stores.redis, prefix=stores.settings.prefix)
        return projector

    async def before_commit(self, records: Sequence[Recorded]) -> None:
        """Fence as every projector does, and tell the served ranking of the people the
        batch erases, so their nickname leaves every API process's ranking once this
        commits, not at the job's next run."""
        await super().before_commit(records)
        if self.ranking is not None and self.live:
            erased = [r.event.user_id for r in records if type(r.event) is UserErased]
            await self.ranking.mark(erased)

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        # Read in the batch's transaction: an erasure committed before it is seen by all of
        # the batch; one committed after is made sure of by the user.erased event itself.
        keys = await batch_keys(conn, self.master, {r.envelope.aggregate_id for r in records})
        # Runs of one event type become one statement where it pays; order is kept.
        for event_type, run in groupby(records, key=lambda r: type(r.event)):
            batch = list(run)
            if event_type is UserRegistered:
                await self._registered(conn, batch, keys)
            else:
                for rec in batch:
                    await self._one(conn, _revealed(rec.event, keys), rec, keys)

    def stale_cache_keys(self, records: Sequence[Recorded]) -> set[str]:
        if self.cache is None:
            return set()
        # A brand-new account has nothing cached yet (misses are not cached).
        return {
            user_info_key(self.cache, rec.envelope.aggregate_id)
            for rec in records
            if not isinstance(rec.event, UserRegistered)
        }

    async def _registered(
        self, conn: AsyncConnection, records: list[Recorded], keys: BatchKeys
    ) -> None:
        # Columns by comprehension: this is the hot path of every replay. handle() groups
        # runs by exact type, so every event here is a UserRegistered.
        events = cast(list[UserRegistered], [rec.event for rec in records])
        opened = [_revealed_text(ev, keys) for ev in events]
        ids = [ev.user_id for ev in events]
        emails = [fields["email"] for fields in opened]
        hashes = [fields["password_hash"] for fields in opened]
        ats = [rec.envelope.occurred_at for rec in records]
        await conn.execute(
            REGISTER_USERS, {"id": ids, "email": emails, "password_hash": hashes, "at": ats}
        )

    async def _one(self, conn: AsyncConnection, ev: Event, rec: Recorded, keys: BatchKeys) -> None:
        at = rec.envelope.occurred_at
        match ev:
            case UserRegisteredByPhone():
                await self._new_user(conn, ev.user_id, at, phone=ev.phone)
                await _confirm_phone(conn, ev.phone, ev.user_id)
            case UserRegisteredByWeChat():
                await self._new_user(
                    conn, ev.user_id, at, wechat_openid=ev.openid, wechat_unionid=ev.unionid
                )
                await _confirm(conn, "wechat", ev.openid, ev.user_id)
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
                if ev.phone is not None:  # else unreadable: the user is erased
                    await self._set_user(conn, ev.user_id, at, phone=ev.phone)
                await _confirm_phone(conn, ev.phone, ev.user_id)
                # A key made again while the account held no other phone goes once the
                # phone that replaced it is applied, if a projector made it (a command's
                # claim, pending or confirmed with its position, may be the account taking
                # it back).
                if ev.previous_phone is not None and ev.previous_phone != ev.phone:
                    await _free_remade(conn, "phone", ev.previous_phone, ev.user_id)
            case UserErased():
                await self._erased(conn, ev.user_id, at)
                keys.erase(ev.user_id)
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
                if ev.user_id in keys.erased:
                    # A login racing the erasure may land after it: born ended, never
                    # live. Only after it in the log (the account's row says so): a replay
                    # knows of the erasure from its first batch, and a session started
                    # before it ends as it did live (logged out, or at the erasure).
                    await conn.execute(_BORN_ENDED, {"session": ev.session_id, "at": at})
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

    async def _erased(self, conn: AsyncConnection, user_id: str, at: Any) -> None:
        """Forget the person: the row stays as a tombstone, their sessions end, their key is
        shredded and their unique keys freed (again, if the command did it: a crash between
        its append and its shredding loses nothing)."""
        await self._set_user(conn, user_id, at, erased_at=at, **_ERASED)
        await conn.execute(
            update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason="erased")
        )
        await shred(conn, user_id)

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


def _revealed(event: Event, keys: BatchKeys) -> Any:
    if not isinstance(event, PersonalEvent):
        return event
    key, erased = _key_of(event, keys)
    return reveal(event, key, erased=erased)


def _revealed_text(event: PersonalEvent, keys: BatchKeys) -> dict[str, Any]:
    key, erased = _key_of(event, keys)
    return reveal_text(event, key, erased=erased)


def _key_of(event: PersonalEvent, keys: BatchKeys) -> tuple[bytes | None, bool]:
    """The key that opens ``event``'s personal fields, and whether its user is erased."""
    user, key = event.user_id, keys.key(event.user_id)
    erased = user in keys.erased
    if event.sealed is not None and key is None and not erased:
        # Only erasure removes a key, and it leaves a tombstone: a key missing outright
        # means the table lost rows. The fields read blank (fail closed); say so.
        log.warning("users.key_missing", user_id=user, event_type=event.TYPE)
    return key, erased


async def _free_remade(conn: AsyncConnection, kind: str, value: str, owner: str) -> None:
    """Free a key its owner gave up, if a projector's confirmation made it (no position);
    one someone else has taken since, or a command holds, is left alone."""
    r = reservations.c
    await conn.execute(
        delete(reservations).where(
            r.kind == kind,
            r.value == value,
            r.owner_id == owner,
            r.status == "confirmed",
            r.position.is_(None),
        )
    )


async def _confirm_phone(conn: AsyncConnection, value: str | None, owner: str) -> None:
    """Confirm the phone the event names, unless the account has moved off it since
    (``CONFIRM_PHONE``); an erased user's events name none (unreadable)."""
    if value is not None:
        await conn.execute(CONFIRM_PHONE, {"value": value, "owner_id": owner})


async def _confirm(conn: AsyncConnection, kind: str, value: str | None, owner: str) -> None:
    """Confirm a key the event names; an erased user's events name none (unreadable)."""
    if value is not None:
        await confirm_many(conn, [(kind, value, owner)])
