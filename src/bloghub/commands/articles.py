"""Article commands. Only the author changes an article.

Every change names the draft version it produces. Reserving "<article>:<version>" in the
write-side index makes concurrent changes of one article take turns: the second to reserve
the same next version, or one decided on an older state than the newest reserved, is
refused (409), so no change is lost by being overwritten. Only the newest version's key is
kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bloghub.commands.context import Caller, CommandDeps
from bloghub.errors import Conflict, Forbidden, NotFound
from bloghub.events.articles import (
    ArticleDeleted,
    ArticleDrafted,
    ArticleEvent,
    ArticlePublished,
    ArticleWithdrawn,
    DraftEdited,
)
from bloghub.events.log import Indeterminate
from bloghub.events.position import Position
from bloghub.ids import new_id_str

VERSION_KIND = "article_version"
_Make = Callable[[int], ArticleEvent]  # the event a change makes, given its version


@dataclass(frozen=True, slots=True)
class Draft:
    title: str
    content: str
    tags: list[str]


@dataclass(frozen=True, slots=True)
class ArticleState:
    """What a decision needs of an article, read after the author's own last write."""

    id: str
    author_id: str
    version: int
    status: str
    draft: Draft


@dataclass(frozen=True, slots=True)
class Changed:
    article_id: str
    version: int
    position: Position


async def create_article(draft: Draft, deps: CommandDeps, caller: Caller) -> Changed:
    author = _author(caller)
    event = ArticleDrafted(
        article_id=new_id_str(),
        author_id=author,
        version=1,
        title=draft.title,
        content=draft.content,
        tags=draft.tags,
    )
    try:
        position = await deps.record(caller, event)
    except Indeterminate as unsure:
        # The draft may still be recorded: whoever waits for it learns its id with it.
        raise unsure.then(lambda pos: Changed(event.article_id, 1, pos)) from unsure
    return Changed(event.article_id, 1, position)


async def edit_draft(
    state: ArticleState | None,
    draft: Draft,
    based_on: int | None,
    deps: CommandDeps,
    caller: Caller,
) -> Changed:
    current = _owned(state, caller)
    if based_on is not None and based_on != current.version:
        raise Conflict(
            f"the draft changed since version {based_on} (now {current.version})",
            fields={"version": "stale"},
        )
    return await _change(current, deps, caller, _carrying(DraftEdited, current, draft))


async def publish_article(state: ArticleState | None, deps: CommandDeps, caller: Caller) -> Changed:
    current = _owned(state, caller)
    return await _change(current, deps, caller, _carrying(ArticlePublished, current, current.draft))


async def withdraw_article(
    state: ArticleState | None, deps: CommandDeps, caller: Caller
) -> Changed:
    current = _owned(state, caller)
    if current.status != "published":
        raise Conflict("only a published article can be withdrawn")
    return await _change(
        current,
        deps,
        caller,
        lambda v: ArticleWithdrawn(article_id=current.id, author_id=current.author_id, version=v),
    )


async def delete_article(state: ArticleState | None, deps: CommandDeps, caller: Caller) -> Changed:
    current = _owned(state, caller)
    return await _change(
        current,
        deps,
        caller,
        lambda v: ArticleDeleted(article_id=current.id, author_id=current.author_id, version=v),
    )


def _author(caller: Caller) -> str:
    if caller.actor_id is None:
        raise Forbidden("sign in to write articles")
    return caller.actor_id


def _owned(state: ArticleState | None, caller: Caller) -> ArticleState:
    if state is None:
        raise NotFound("no such article")
    if state.author_id != _author(caller):
        raise Forbidden("only the author may change this article")
    return state


def _carrying(
    event: type[DraftEdited] | type[ArticlePublished], current: ArticleState, draft: Draft
) -> _Make:
    """A change that carries a whole draft: an edit (the new draft), a publish (the draft
    as it stands)."""
    return lambda v: event(
        article_id=current.id,
        author_id=current.author_id,
        version=v,
        title=draft.title,
        content=draft.content,
        tags=draft.tags,
    )


async def _change(current: ArticleState, deps: CommandDeps, caller: Caller, make: _Make) -> Changed:
    version = current.version + 1
    try:
        value = await deps.reservations.reserve_step(
            VERSION_KIND, current.id, version, current.author_id
        )
    except Conflict:
        raise Conflict(
            "the article was changed by another request; reload and retry",
            fields={"version": "stale"},
        ) from None
    try:
        position = await deps.record_holding(
            caller, (VERSION_KIND, value, current.author_id), make(version)
        )
    except Indeterminate as unsure:
        raise unsure.then(lambda pos: Changed(current.id, version, pos)) from unsure
    await _forget_older_versions(deps, current.id, version)
    return Changed(current.id, version, position)


async def _forget_older_versions(deps: CommandDeps, article_id: str, version: int) -> None:
    """The newest version's key alone refuses stale changes; older ones would only pile up.
    The change is recorded already, so this is retried off the request path, never an
    error in the caller's answer."""

    async def forget() -> None:
        await deps.reservations.release_steps_before(VERSION_KIND, article_id, version)

    await deps.after("forget_older_versions", forget, article_id=article_id)
