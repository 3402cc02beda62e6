"""The write-side index: unique keys (email, phone, username, slug, WeChat open id) reserved
synchronously by commands, confirmed once their event is recorded, swept if never confirmed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Text, and_, bindparam, delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bloghub.adapters.postgres.bulk import unnest_source
from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.tables import reservations
from bloghub.errors import Conflict

r = reservations.c


@dataclass(frozen=True, slots=True)
class Reservation:
    kind: str
    value: str
    owner_id: str
    status: str
    position: str | None


class Reservations:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def reserve(self, kind: str, value: str, owner_id: str) -> None:
        """Claim ``value`` for ``owner_id``; ``Conflict`` if anyone holds it."""
        stmt = (
            insert(reservations)
            .values(kind=kind, value=value, owner_id=owner_id, status="pending")
            .on_conflict_do_nothing()
            .returning(r.owner_id)
        )
        async with translated(), self._engine.begin() as conn:
            claimed = (await conn.execute(stmt)).scalar_one_or_none()
        if claimed is None:
            raise Conflict(f"that {kind} is already taken", fields={kind: "already taken"})

    async def confirm(self, kind: str, value: str, owner_id: str, position: str) -> None:
        async with translated(), self._engine.begin() as conn:
            await confirm_many(conn, [(kind, value, owner_id)], position=position)

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

    async def get(self, kind: str, value: str) -> Reservation | None:
        stmt = select(r.kind, r.value, r.owner_id, r.status, r.position).where(
            and_(r.kind == kind, r.value == value)
        )
        async with translated(), self._engine.connect() as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return None if row is None else Reservation(*row)

    async def sweep(self, older_than_s: float) -> list[tuple[str, str]]:
        """Release reservations whose event never arrived (a crash between reserve and append)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        stmt = (
            delete(reservations)
            .where(and_(r.status == "pending", r.reserved_at < cutoff))
            .returning(r.kind, r.value)
        )
        async with translated(), self._engine.begin() as conn:
            return [(row.kind, row.value) for row in await conn.execute(stmt)]


_keys = unnest_source({"kind": Text(), "value": Text(), "owner_id": Text()})
_confirm = insert(reservations).from_select(
    ["kind", "value", "owner_id", "status", "position", "confirmed_at"],
    select(
        _keys.c.kind,
        _keys.c.value,
        _keys.c.owner_id,
        literal("confirmed"),
        bindparam("position", type_=Text()),
        func.now(),
    ),
)
# A sweep that raced a slow projector may have released the key: the event is in the log,
# so the key is taken whatever the index said. Another owner's key is left alone.
CONFIRM_KEYS = _confirm.on_conflict_do_update(
    index_elements=["kind", "value"],
    set_={
        "status": "confirmed",
        "confirmed_at": _confirm.excluded.confirmed_at,
        "position": func.coalesce(_confirm.excluded.position, r.position),
    },
    where=(r.owner_id == _confirm.excluded.owner_id) & (r.status != "confirmed"),
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
