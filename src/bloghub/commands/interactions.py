"""Interaction commands: likes, collections and what goes into them.

They decide on the interactions read model (is the article shown to readers, whose is a
collection), read after the caller's own last write. Repeating one is harmless: the
projector keeps sets, so a second like, or an unlike of what was never liked, changes
nothing. The projector has the last word on visibility: a like that reaches it after the
article was withdrawn moves no count.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bloghub.commands.context import Caller, CommandDeps
from bloghub.commands.turns import turn
from bloghub.errors import Conflict, Forbidden, NotFound
from bloghub.events.interactions import (
    ArticleCollected,
    ArticleLiked,
    ArticleUncollected,
    ArticleUnliked,
    CollectionCreated,
)
from bloghub.events.log import Indeterminate
from bloghub.events.position import Position
from bloghub.ids import new_id_str


@dataclass(frozen=True, slots=True)
class Target:
    """An article as the interactions read model knows it (once it has been published)."""

    article_id: str
    author_id: str
    visible: bool


@dataclass(frozen=True, slots=True)
class Box:
    """A collection as the read model knows it."""

    id: str
    owner_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Made:
    collection_id: str
    name: str
    position: Position


def _user(caller: Caller) -> str:
    if caller.actor_id is None:
        raise Forbidden("sign in first")
    return caller.actor_id


def shown(target: Target | None) -> Target:
    """Only what readers can see is liked or collected: never published is not found,
    withdrawn or deleted is a conflict with the article's state."""
    if target is None:
        raise NotFound("no such article")
    if not target.visible:
        raise Conflict("the article is not published")
    return target


def known(target: Target | None) -> Target:
    """An article ever published, whatever readers may see of it now."""
    if target is None:
        raise NotFound("no such article")
    return target


def owned(box: Box | None, caller: Caller) -> Box:
    """Collections are private: another user's is not found, as one that does not exist."""
    if box is None or box.owner_id != _user(caller):
        raise NotFound("no such collection among yours")
    return box


async def like(target: Target | None, on: bool, deps: CommandDeps, caller: Caller) -> Position:
    article = shown(target)
    kind = ArticleLiked if on else ArticleUnliked
    event = kind(article_id=article.article_id, author_id=article.author_id, user_id=_user(caller))
    return await deps.record(caller, event)


async def collect(
    target: Target | None, box: Box | None, on: bool, deps: CommandDeps, caller: Caller
) -> Position:
    mine = owned(box, caller)
    # Only what readers see goes in; what was hidden since may still be taken out.
    article = shown(target) if on else known(target)
    kind = ArticleCollected if on else ArticleUncollected
    event = kind(
        article_id=article.article_id,
        author_id=article.author_id,
        user_id=mine.owner_id,
        collection_id=mine.id,
    )
    return await deps.record(caller, event)


async def create_collection(name: str, deps: CommandDeps, caller: Caller) -> Made:
    event = CollectionCreated(collection_id=new_id_str(), owner_id=_user(caller), name=name)
    try:
        position = await deps.record(caller, event)
    except Indeterminate as unsure:
        raise unsure.then(lambda pos: Made(event.collection_id, name, pos)) from unsure
    return Made(event.collection_id, name, position)


COLLECTING_TURN = "collecting_turn"
COLLECTING_TURN_WAIT_S = 2.0


@asynccontextmanager
async def collecting_turn(deps: CommandDeps, user_id: str, article_id: str) -> AsyncIterator[None]:
    """A user's turn to put an article in, or take it out of, their collections
    (commands/turns.py), held from the decision to the remembered answer. An answer says
    whether the caller still holds the article in any collection, read before its write:
    two sent at once (two tabs) each read the other's as not yet made, and one answered
    wrongly (both ``true`` after two uncollects, ``false`` for an uncollect beside a
    collect into another). Taken in turn, the second reads after the first's write, which
    it waits for as for any own write. The turn ends off the request path."""
    busy = "another change of this article in your collections is in progress; retry"
    key = f"{user_id}:{article_id}"
    async with turn(deps, COLLECTING_TURN, key, wait_s=COLLECTING_TURN_WAIT_S, busy=busy):
        yield
