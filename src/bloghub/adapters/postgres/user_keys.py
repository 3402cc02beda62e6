"""The ``user_keys`` table: each user's random key, wrapped by the master key, and the
tombstone erasure leaves in its place."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Text, any_, bindparam, delete, func, null, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.lookups import Lookups
from bloghub.adapters.postgres.tables import PERSONAL_KINDS, reservations, user_keys
from bloghub.auth.sealing import MasterKey, Unreadable, new_user_key
from bloghub.errors import Unauthorized, Unavailable
from bloghub.events.position import Position

k = user_keys.c
# The unique keys a person holds, freed when they are erased so others may take them.
PERSONAL_KEY_KINDS = PERSONAL_KINDS
# Built once: every authenticated write asks it, and SQLAlchemy's compiled cache then
# finds it without building the statement again.
ERASED_AT = select(k.erased_at).where(k.user_id == bindparam("user_id"))
# The same for ``Lookups``, which asyncpg prepares once per connection, asked for all the
# writes that wait at once (``Coalesced``).
ERASED_AMONG_SQL = (
    "SELECT user_id, erased_at FROM public.user_keys WHERE user_id = ANY($1::text[]) "
    "AND erased_at IS NOT NULL"
)


class AccountErased(Unauthorized):
    """The account was erased: nothing more may be written for it."""

    def __init__(self) -> None:
        super().__init__("this account has been erased")


@dataclass(slots=True)
class BatchKeys:
    """The keys of a projector batch's users, as the table held them when the batch began.

    ``keys[user]`` is the user's key; a user in ``erased`` has none any more; a user in
    neither never had one (only events written before sealing, in clear)."""

    keys: dict[str, bytes] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)

    def key(self, user_id: str) -> bytes | None:
        return self.keys.get(user_id)

    def erase(self, user_id: str) -> None:
        """Later events of this batch see the user as erased, as a replay would."""
        self.keys.pop(user_id, None)
        self.erased.add(user_id)


class UserKeys:
    def __init__(
        self, engine: AsyncEngine, master: MasterKey, *, checks: Lookups | None = None
    ) -> None:
        """``checks``, if given, answers ``refuse_erased`` (every authenticated write asks
        it) on a pool of its own, with the statement prepared; without it the engine does
        (tests that build this alone)."""
        self._engine = engine
        self._master = master
        self._checks = checks
        # A single read needs no transaction: in autocommit the asyncpg driver sends no
        # BEGIN and, on return to the pool, no ROLLBACK, two round trips fewer per write.
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def close(self) -> None:
        if self._checks is not None:
            await self._checks.close()

    async def key_for(self, user_id: str) -> bytes:
        """The user's key, made on first use; ``AccountErased`` once they are erased."""
        made = new_user_key()
        add = (
            insert(user_keys)
            .values(user_id=user_id, wrapped_key=self._master.wrap(user_id, made))
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
        # Two first uses at once both insert; the row that won is the key of both.
        async with translated(), self._engine.begin() as conn:
            await conn.execute(add)
            wrapped = (
                await conn.execute(select(k.wrapped_key).where(k.user_id == user_id))
            ).scalar_one()
        if wrapped is None:
            raise AccountErased()
        return unwrap(self._master, user_id, wrapped)

    async def refuse_erased(self, user_id: str) -> None:
        """``AccountErased`` if the user is erased: the tombstone is written when the
        erasure is, so this holds however far the projectors lag."""
        async with translated():
            try:
                erased_at = await self._erased_at(user_id)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # A connection the server dropped (a restart, say) is discarded by the
                # pool; one retry takes a fresh one, as a pre-ping would have.
                erased_at = await self._erased_at(user_id)
        if erased_at is not None:
            raise AccountErased()

    async def _erased_at(self, user_id: str) -> object:
        if self._checks is not None:
            erased = await self._checks.one_of(ERASED_AMONG_SQL, user_id)
            return None if erased is None else erased[1]
        async with self._reads.connect() as conn:
            return (await conn.execute(ERASED_AT, {"user_id": user_id})).scalar_one_or_none()

    async def mark_credentials(self, user_id: str, position: Position) -> None:
        """``position`` changed how the account signs in (a password change or reset, an
        erasure): kept with its key, merged with what was kept, so logins wait for the
        users projector to pass it even if Redis, which keeps it too, loses it."""
        if not position:
            return
        async with translated(), self._engine.begin() as conn:
            kept = await conn.execute(
                select(k.credentials_changed).where(k.user_id == user_id).with_for_update()
            )
            merged = parse_position(kept.scalar_one_or_none()).merge(position)
            text = ";".join(f"{t}|{p}|{o}" for t, p, o in merged)
            await conn.execute(
                update(user_keys).where(k.user_id == user_id).values(credentials_changed=text)
            )

    async def credentials_changed(self, user_id: str) -> Position:
        """What ``mark_credentials`` kept (empty: no change)."""
        async with translated(), self._reads.connect() as conn:
            kept = await conn.execute(select(k.credentials_changed).where(k.user_id == user_id))
            return parse_position(kept.scalar_one_or_none())

    async def erase(self, user_id: str) -> None:
        """Shred the user's key and free their email, phone and WeChat id, at once."""
        async with translated(), self._engine.begin() as conn:
            await shred(conn, user_id)


async def shred(conn: AsyncConnection, user_id: str) -> None:
    """Leave a tombstone for the user's key and release the unique keys they held (only
    theirs: one someone has taken since is left alone). Idempotent, so the command and
    the projector (which makes sure of it, even in a replay) may both do it."""
    tombstone = insert(user_keys).values(user_id=user_id, wrapped_key=None, erased_at=func.now())
    await conn.execute(
        tombstone.on_conflict_do_update(
            index_elements=["user_id"],
            set_={"wrapped_key": null(), "erased_at": func.coalesce(k.erased_at, func.now())},
        )
    )
    r = reservations.c
    await conn.execute(
        delete(reservations).where(r.owner_id == user_id, r.kind.in_(PERSONAL_KEY_KINDS))
    )


async def batch_keys(conn: AsyncConnection, master: MasterKey, users: Iterable[str]) -> BatchKeys:
    """Every key of ``users`` in one query (a projector's batch, not each of its events)."""
    wanted = sorted(set(users))
    found = BatchKeys()
    if not wanted:
        return found
    # One array parameter, not an IN list of thousands: the statement stays constant.
    ids = bindparam("ids", wanted, type_=ARRAY(Text()))
    rows = await conn.execute(select(k.user_id, k.wrapped_key).where(k.user_id == any_(ids)))
    for user_id, wrapped in rows:
        if wrapped is None:
            found.erased.add(user_id)
        else:
            found.keys[user_id] = unwrap(master, user_id, wrapped)
    return found


def unwrap(master: MasterKey, user_id: str, wrapped: bytes) -> bytes:
    """A stored key that the master key does not open means the wrong secret is configured:
    everything waits and says so. Reading on as if the user were erased would blank live
    accounts in the read model."""
    try:
        return master.unwrap(user_id, wrapped)
    except Unreadable:
        raise Unavailable(
            "a user key does not open with the configured master key "
            "(BLOGHUB_USER_KEY_SECRET): is it the one the keys were made with?"
        ) from None


def parse_position(text: str | None) -> Position:
    """The position ``mark_credentials`` stores as text."""
    offsets = {}
    for entry in (text or "").split(";"):
        if entry:
            topic, partition, offset = entry.rsplit("|", 2)
            offsets[(topic, int(partition))] = int(offset)
    return Position(offsets)
