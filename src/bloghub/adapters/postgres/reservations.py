"""The write-side index: unique keys (email, phone, username, slug, WeChat open id) reserved
synchronously by commands, confirmed once their event is recorded, swept if never confirmed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Interval,
    Select,
    Text,
    and_,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bloghub.adapters.postgres.bulk import unnest_source
from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.lookups import Lookups
from bloghub.adapters.postgres.tables import PERSONAL_KINDS, PERSONAL_KINDS_SQL, reservations
from bloghub.coalesce import Coalesced
from bloghub.errors import Conflict

r = reservations.c
MAX_STEP = 10**10 - 1


def _taken(kind: str) -> Conflict:
    return Conflict(f"that {kind} is already taken", fields={kind: "already taken"})


def step_key(series: str, step: int) -> str:
    """``<series>:<step>``, the step zero-padded to ten digits, so the keys of one series
    sort by step (and a range of them is one index scan)."""
    if not 0 <= step <= MAX_STEP:
        raise ValueError(f"step {step} out of range")
    return f"{series}:{step:010d}"


@dataclass(frozen=True, slots=True)
class Reservation:
    kind: str
    value: str
    owner_id: str
    status: str
    position: str | None


# The statements a command's path runs, for ``Lookups`` (one round trip each, prepared
# once per connection). A claim its owner already holds pending answers as a fresh one: a
# statement repeated on a lost connection (it may have been applied) finds its own row.
CLAIM_SQL = (
    "INSERT INTO public.reservations AS h (kind, value, owner_id, status) "
    "VALUES ($1, $2, $3, 'pending') ON CONFLICT (kind, value) DO UPDATE "
    "SET owner_id = excluded.owner_id WHERE h.owner_id = excluded.owner_id "
    "AND h.status = 'pending' RETURNING h.owner_id"
)
# The first of the candidates ($2, in order) nobody else holds. Another claim may take it
# in between: then nothing is returned and the caller asks again.
CLAIM_FIRST_SQL = (
    "INSERT INTO public.reservations AS h (kind, value, owner_id, status) "
    "SELECT $1::text, c.value, $3::text, 'pending' "
    "FROM unnest($2::text[]) WITH ORDINALITY AS c(value, n) "
    "WHERE NOT EXISTS (SELECT 1 FROM public.reservations o WHERE o.kind = $1 "
    "AND o.value = c.value AND NOT (o.owner_id = $3 AND o.status = 'pending')) "
    "ORDER BY c.n LIMIT 1 ON CONFLICT (kind, value) DO UPDATE "
    "SET owner_id = excluded.owner_id WHERE h.owner_id = excluded.owner_id "
    "AND h.status = 'pending' RETURNING h.value"
)
# Many commands' confirmations in one statement, each row with its own position. One
# statement may update a row only once, so a batch's keys are distinct; they go in key
# order, the order any other such statement takes the same rows in.
CONFIRM_ALL_SQL = (
    "INSERT INTO public.reservations AS r "
    "(kind, value, owner_id, position, status, confirmed_at) "
    "SELECT k.kind, k.value, k.owner_id, k.position, 'confirmed', now() "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
    "AS k(kind, value, owner_id, position) "
    "ON CONFLICT (kind, value) DO UPDATE SET status = 'confirmed', "
    "confirmed_at = excluded.confirmed_at, position = coalesce(excluded.position, r.position) "
    "WHERE r.owner_id = excluded.owner_id AND r.status <> 'confirmed'"
)

# The values of one personal kind an owner holds, pending or confirmed. The predicate of
# the partial index by owner (``PERSONAL_KINDS_SQL``) is repeated word for word, so the
# plan may use it whatever the parameters.
HELD_BY_SQL = (
    "SELECT value FROM public.reservations WHERE owner_id = $1 AND kind = $2 "
    "AND kind IN ('email', 'phone', 'wechat', 'username') ORDER BY value"
)

Confirmation = tuple[str, str, str, str]  # kind, value, owner, position


def distinct_rounds(keys: Sequence[Confirmation]) -> list[list[Confirmation]]:
    """``keys`` in rounds whose (kind, value) pairs are distinct, each in key order: the
    same key confirmed twice at once goes in a second round."""
    rounds: list[list[Confirmation]] = []
    taken: list[set[tuple[str, str]]] = []
    for key in sorted(keys):
        for i, pairs in enumerate(taken):
            if (key[0], key[1]) not in pairs:
                pairs.add((key[0], key[1]))
                rounds[i].append(key)
                break
        else:
            taken.append({(key[0], key[1])})
            rounds.append([key])
    return rounds


class Reservations:
    def __init__(self, engine: AsyncEngine, lookups: Lookups | None = None) -> None:
        self._engine = engine
        # Commands claim and confirm keys on every signup and draft: through ``Lookups``
        # each is one round trip, where a SQLAlchemy transaction was four (pre-ping,
        # BEGIN, the statement, COMMIT). Confirmations, off the request path, are
        # coalesced: those made while one is on its way go together in the next.
        self._lookups = lookups
        self._confirms: Coalesced[Confirmation, None] = Coalesced(self._confirm_all)

    async def reserve(self, kind: str, value: str, owner_id: str) -> None:
        """Claim ``value`` for ``owner_id``; ``Conflict`` if anyone holds it."""
        if self._lookups is not None:
            if not await self._lookups.rows(CLAIM_SQL, kind, value, owner_id):
                raise _taken(kind)
            return
        row = insert(reservations).values(
            kind=kind, value=value, owner_id=owner_id, status="pending"
        )
        stmt = row.on_conflict_do_update(  # as CLAIM_SQL: the owner's repeat holds
            index_elements=["kind", "value"],
            set_={"owner_id": row.excluded.owner_id},
            where=(r.owner_id == row.excluded.owner_id) & (r.status == "pending"),
        ).returning(r.owner_id)
        async with translated(), self._engine.begin() as conn:
            if (await conn.execute(stmt)).scalar_one_or_none() is None:
                raise _taken(kind)

    async def reserve_first(self, kind: str, candidates: Sequence[str], owner_id: str) -> str:
        """Claim the first of ``candidates`` nobody holds, in one round trip when it can;
        ``Conflict`` if every one is held."""
        if self._lookups is not None:
            for _ in range(3):  # another claim took the free one meanwhile: ask again
                claimed = await self._lookups.rows(CLAIM_FIRST_SQL, kind, candidates, owner_id)
                if claimed:
                    return str(claimed[0][0])
        for value in candidates:
            try:
                await self.reserve(kind, value, owner_id)
            except Conflict:
                continue
            return value
        raise _taken(kind)

    async def confirm(self, kind: str, value: str, owner_id: str, position: str) -> None:
        if self._lookups is not None:
            await self._confirms((kind, value, owner_id, position))
            return
        async with translated(), self._engine.begin() as conn:
            await confirm_many(conn, [(kind, value, owner_id)], position=position)

    async def _confirm_all(self, keys: list[Confirmation]) -> list[None]:
        assert self._lookups is not None
        for batch in distinct_rounds(keys):
            columns = [list(c) for c in zip(*batch, strict=True)]
            await self._lookups.rows(CONFIRM_ALL_SQL, *columns)
        return [None] * len(keys)

    async def release(self, kind: str, value: str, owner_id: str) -> None:
        stmt = delete(reservations).where(
            and_(r.kind == kind, r.value == value, r.owner_id == owner_id, r.status == "pending")
        )
        async with translated(), self._engine.begin() as conn:
            await conn.execute(stmt)

    async def release_confirmed(self, kind: str, value: str, owner_id: str) -> None:
        """Free a key its owner gave up (after the event recording that was appended)."""
        stmt = delete(reservations).where(
            and_(r.kind == kind, r.value == value, r.owner_id == owner_id)
        )
        async with translated(), self._engine.begin() as conn:
            await conn.execute(stmt)

    async def held_by(self, kind: str, owner_id: str) -> list[str]:
        """The values of ``kind`` (a personal kind: email, phone, wechat, username) that
        ``owner_id`` holds, pending or confirmed, in order: what the index says the account
        holds, however far the read model lags."""
        if kind not in PERSONAL_KINDS:
            raise ValueError(f"{kind!r} is not a personal kind: not indexed by owner")
        if self._lookups is not None:
            return [str(row[0]) for row in await self._lookups.rows(HELD_BY_SQL, owner_id, kind)]
        stmt = (
            select(r.value)
            .where(r.owner_id == owner_id, r.kind == kind, text(PERSONAL_KINDS_SQL))
            .order_by(r.value)
        )
        async with translated(), self._engine.connect() as conn:
            return [str(value) for value in (await conn.execute(stmt)).scalars()]

    async def reserve_step(self, kind: str, series: str, step: int, owner_id: str) -> str:
        """Claim step ``step`` of an ordered series (an article's versions): ``Conflict`` if
        that step is held, or if any later step is, so a change decided on an old state
        is refused even once the steps before the newest are gone. Returns the key."""
        value, last = step_key(series, step), step_key(series, MAX_STEP)
        newer = select(literal(1)).where(r.kind == kind, r.value > value, r.value <= last)
        row = insert(reservations).from_select(
            ["kind", "value", "owner_id", "status"],
            select(
                literal(kind, Text()),
                literal(value, Text()),
                literal(owner_id, Text()),
                literal("pending", Text()),
            ).where(~newer.exists()),
        )
        await self._claim(row, kind)
        return value

    async def _claim(self, row: Insert, kind: str) -> None:
        """Insert the pending row unless the key is held; ``Conflict`` if it is."""
        stmt = row.on_conflict_do_nothing().returning(r.owner_id)
        async with translated(), self._engine.begin() as conn:
            claimed = (await conn.execute(stmt)).scalar_one_or_none()
        if claimed is None:
            raise _taken(kind)

    async def release_steps_before(self, kind: str, series: str, step: int) -> int:
        """Forget confirmed steps older than ``step`` (once ``step`` is confirmed): the
        newest confirmed step alone refuses changes decided on older states."""
        stmt = delete(reservations).where(
            r.kind == kind,
            r.status == "confirmed",
            r.value >= step_key(series, 0),
            r.value < step_key(series, step),
        )
        async with translated(), self._engine.begin() as conn:
            return int((await conn.execute(stmt)).rowcount)

    async def get(self, kind: str, value: str) -> Reservation | None:
        stmt = select(r.kind, r.value, r.owner_id, r.status, r.position).where(
            and_(r.kind == kind, r.value == value)
        )
        async with translated(), self._engine.connect() as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return None if row is None else Reservation(*row)

    async def sweep(self, older_than_s: float) -> list[tuple[str, str]]:
        """Release reservations whose event never arrived (a crash between reserve and append,
        or a write the producer gave up on). Ages are measured on the database's clock, the
        one ``reserved_at`` was stamped with, so an API host's clock cannot shorten them."""
        age = bindparam("age", timedelta(seconds=older_than_s), type_=Interval())
        stmt = (
            delete(reservations)
            .where(and_(r.status == "pending", r.reserved_at < func.now() - age))
            .returning(r.kind, r.value)
        )
        async with translated(), self._engine.begin() as conn:
            return [(row.kind, row.value) for row in await conn.execute(stmt)]


def confirm_keys_from(keys: Select[*tuple[Any, ...]]) -> Insert:
    """The upsert that confirms the keys ``keys`` selects (its filter kept), as (kind,
    value, owner_id, position): each becomes, or stays, confirmed for its owner."""
    stmt = insert(reservations).from_select(
        ["kind", "value", "owner_id", "position", "status", "confirmed_at"],
        keys.add_columns(literal("confirmed"), func.now()),
    )
    # A sweep that raced a slow projector may have released the key: the event is in the
    # log, so the key is taken whatever the index said. Another owner's key is left alone.
    return stmt.on_conflict_do_update(
        index_elements=["kind", "value"],
        set_={
            "status": "confirmed",
            "confirmed_at": stmt.excluded.confirmed_at,
            "position": func.coalesce(stmt.excluded.position, r.position),
        },
        where=(r.owner_id == stmt.excluded.owner_id) & (r.status != "confirmed"),
    )


_keys = unnest_source({"kind": Text(), "value": Text(), "owner_id": Text()})
CONFIRM_KEYS = confirm_keys_from(
    select(_keys.c.kind, _keys.c.value, _keys.c.owner_id, bindparam("position", type_=Text()))
)


async def confirm_many(
    conn: AsyncConnection, keys: Sequence[tuple[str, str, str]], *, position: str | None = None
) -> None:
    """Mark reservations (kind, value, owner) confirmed, creating them if they are gone."""
    if not keys:
        return
    kinds, values, owners = (list(column) for column in zip(*keys, strict=True))
    params = {"kind": kinds, "value": values, "owner_id": owners, "position": position}
    await conn.execute(CONFIRM_KEYS, params)
