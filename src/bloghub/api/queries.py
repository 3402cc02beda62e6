"""Queries over the read models, always against the projector's active generation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, cast, select
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import read_all
from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.tables import reservations, sessions, users
from bloghub.api.consistency import Generations
from bloghub.commands.users import USERNAME, username_key


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    email: str | None
    password_hash: str | None
    phone: str | None
    nickname: str | None
    birthday: date | None
    about_me: str | None
    wechat_bound: bool
    created_at: datetime
    erased: bool = False  # a tombstone: every personal field above is empty
    image: str | None = None  # an avatar URL


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    user_id: str
    revoked: bool


_USER_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.password_hash,
    users.c.phone,
    users.c.nickname,
    users.c.birthday,
    users.c.about_me,
    users.c.wechat_openid.is_not(None).label("wechat_bound"),
    users.c.created_at,
    users.c.erased_at.is_not(None).label("erased"),
    users.c.image,
)


class UserQueries:
    projector = "users"

    def __init__(self, engine: AsyncEngine, generations: Generations) -> None:
        self._engine = engine
        self._generations = generations

    async def by_email(self, email: str) -> UserRow | None:
        """The account that holds ``email`` by the write-side index. The read model may
        name one address on two accounts (accounts' events apply in any order); the index
        alone decides which one holds it."""
        holder = select(reservations.c.owner_id).where(
            reservations.c.kind == "email", reservations.c.value == email
        )
        held_by = cast(holder.scalar_subquery(), UUID(as_uuid=False))
        return await self._user((users.c.id == held_by) & (users.c.email == email))

    async def by_username(self, username: str) -> UserRow | None:
        """The account whose nickname is ``username`` (in any case), by the write-side
        index, which alone says who holds a name (as ``by_email``), once the read model
        shows it by that name: None while it has not applied the change that took it (it
        would show the account by the name it gave up, maybe another's now)."""
        key = username_key(username)
        holder = select(reservations.c.owner_id).where(
            reservations.c.kind == USERNAME, reservations.c.value == key
        )
        named = await self._user(users.c.id == cast(holder.scalar_subquery(), UUID(as_uuid=False)))
        if named is not None:
            return named if named.nickname and username_key(named.nickname) == key else None
        account = username.lower()
        if _canonical_id(account):
            # An account with no nickname goes by its id (RealWorld's username for it), in
            # any case as a username is; not one whose first nickname is being applied.
            nicknamed = select(reservations.c.owner_id).where(
                reservations.c.kind == USERNAME, reservations.c.owner_id == account
            )
            return await self._user(
                (users.c.id == account) & users.c.nickname.is_(None) & ~nicknamed.exists()
            )
        return None

    async def by_id(self, user_id: str) -> UserRow | None:
        return await self._user(users.c.id == user_id)

    async def by_ids(self, user_ids: list[str]) -> dict[str, UserRow]:
        """The accounts of ``user_ids`` that the read model holds, in one query (a page of
        articles or comments names up to a page of authors)."""
        if not user_ids:
            return {}
        rows = await self._all(select(*_USER_COLUMNS).where(users.c.id.in_(set(user_ids))))
        return {str(row[0]): _user_row(row) for row in rows}

    async def session(self, session_id: str) -> SessionRow | None:
        stmt = select(sessions.c.id, sessions.c.user_id, sessions.c.revoked_at).where(
            sessions.c.id == session_id
        )
        row = await self._one(stmt)
        return None if row is None else SessionRow(str(row[0]), str(row[1]), row[2] is not None)

    async def _user(self, where: ColumnElement[bool]) -> UserRow | None:
        row = await self._one(select(*_USER_COLUMNS).where(where))
        return None if row is None else _user_row(row)

    async def _one(self, stmt: Select[Any]) -> Any:
        rows = await self._all(stmt)
        if len(rows) > 1:
            raise LookupError(f"{len(rows)} rows where one at most was expected")
        return rows[0] if rows else None

    async def _all(self, stmt: Select[Any]) -> Sequence[Any]:
        schema = schema_name(self.projector, await self._generations.generation(self.projector))
        engine = await self._generations.engine(self.projector, self._engine)
        return await read_all(engine, stmt, {None: schema})


def _user_row(row: Any) -> UserRow:
    return UserRow(str(row[0]), *row[1:])


def _canonical_id(name: str) -> bool:
    """``name`` is an account id as it is shown (lowercase, with hyphens)."""
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False
