"""The user search projector: one document per user who gave a nickname or an about
text, with both (they are public profile fields, sealed in the log like all personal
data, so they are opened here with the users' keys, as the users projector does).

All of one user's events share a partition (keyed by user), so the users offset is the
document's guard. An erased user's document keeps no text and
stays a tombstone: their later events, and older ones replayed, cannot bring it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from opensearchpy import AsyncOpenSearch
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import translated as pg_errors
from bloghub.adapters.postgres.user_keys import batch_keys
from bloghub.adapters.search_indexes import USERS, USERS_BODY, indexed
from bloghub.auth.sealing import MasterKey, master_key
from bloghub.events.base import Event, Recorded
from bloghub.events.personal import reveal
from bloghub.events.topics import Family
from bloghub.events.users import ProfileUpdated, UserErased
from bloghub.projections.search_sink import SearchProjector
from bloghub.projections.stores import Stores

_SEARCHED = {"nickname": "nickname", "about_me": "about"}


def empty_user(user_id: str) -> dict[str, Any]:
    return {"id": user_id, "nickname": None, "about": None, "erased": False, "lo": -1}


def fold_user(current: dict[str, Any], records: list[Recorded]) -> dict[str, Any]:
    doc = dict(current)
    for rec in records:
        if rec.offset <= doc["lo"] or doc["erased"]:
            continue
        doc["lo"] = rec.offset
        ev = rec.event
        if isinstance(ev, UserErased):
            doc.update(erased=True, nickname=None, about=None)
        elif isinstance(ev, ProfileUpdated):
            for name in ev.changed:
                if name in _SEARCHED:
                    doc[_SEARCHED[name]] = indexed(getattr(ev, name))
    return doc


class UserSearchProjector(SearchProjector):
    name = USERS
    families: tuple[Family, ...] = (Family.USERS,)

    def __init__(
        self,
        client: AsyncOpenSearch,
        engine: AsyncEngine,
        *,
        master: MasterKey,
        prefix: str,
        generation: int = 1,
        serve: bool = True,
    ) -> None:
        super().__init__(client, engine, prefix=prefix, generation=generation, serve=serve)
        self.master = master

    @classmethod
    def from_stores(cls, stores: Stores, *, generation: int) -> Self:
        return cls(
            stores.search,
            stores.engine,
            master=master_key(stores.settings),
            prefix=stores.settings.prefix,
            generation=generation,
            serve=stores.cache is not None,
        )

    def index_body(self) -> dict[str, Any]:
        return USERS_BODY

    def passes_over(self, model: type[Event]) -> bool:
        return not issubclass(model, (UserErased, ProfileUpdated))

    def doc_id(self, record: Recorded) -> str | None:
        ev = record.event
        if isinstance(ev, UserErased):
            return ev.user_id
        if isinstance(ev, ProfileUpdated) and set(ev.changed) & set(_SEARCHED):
            return ev.user_id
        return None

    async def reveal(self, records: Sequence[Recorded]) -> Sequence[Recorded]:
        profiles = [r for r in records if isinstance(r.event, ProfileUpdated)]
        if not profiles:
            return records
        async with pg_errors(), self.engine.connect() as conn:
            keys = await batch_keys(conn, self.master, {r.envelope.aggregate_id for r in profiles})
        out = []
        for rec in records:
            ev = rec.event
            if isinstance(ev, ProfileUpdated):
                opened = reveal(ev, keys.key(ev.user_id), erased=ev.user_id in keys.erased)
                rec = rec._replace(event=opened)
            out.append(rec)
        return out

    def fold(
        self, doc_id: str, current: dict[str, Any] | None, records: list[Recorded]
    ) -> dict[str, Any] | None:
        before = current or empty_user(doc_id)
        after = fold_user(before, records)
        return None if after == before else after
