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
from datetime import UTC, datetime

from bloghub.commands.context import Caller, CommandDeps, Key
from bloghub.commands.slugs import free_slug_later, reserve_slug, same_base
from bloghub.errors import Conflict, Forbidden, NotFound
from bloghub.events.articles import (
    ArticleDeleted,
    ArticleDrafted,
    ArticleEvent,
    ArticlePublished,
    ArticleWithdrawn,
    DraftEdited,
)
from bloghub.events.base import Event
from bloghub.events.log import Indeterminate
from bloghub.events.position import Position
from bloghub.ids import new_id_str

VERSION_KIND = "article_version"
# The event a change makes, given its version and the article's slug after it.
_Make = Callable[[int, str | None], ArticleEvent]


@dataclass(frozen=True, slots=True)
class Draft:
    title: str
    content: str
    tags: list[str]
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ArticleState:
    """What a decision needs of an article, read after the author's own last write."""

    id: str
    author_id: str
    version: int
    status: str
    draft: Draft
    slug: str | None = None
    published_version: int | None = None  # the version readers see; None: never published
    published: Draft | None = None  # what they see of it; None: never published, or not read


@dataclass(frozen=True, slots=True)
class Changed:
    article_id: str
    version: int
    position: Position
    slug: str | None
    at: datetime  # when the change happened: its event's time, the one reads show


async def create_article(
    draft: Draft, deps: CommandDeps, caller: Caller, *, publish: bool = False
) -> Changed:
    """A new draft; with ``publish``, drafted and published in one append (RealWorld has no
    drafts), so a failure can never leave a draft the caller was told is not there.

    A draft has no slug: a slug is an article's public address, reserved when it is first
    published (``publish_article``). Reserved at the draft, it told anyone whose article of
    the same title got a suffixed slug that someone's unpublished draft bore that title,
    and cost every draft a claim and its confirmation."""
    author = _author(caller)
    article_id = new_id_str()
    keys: list[Key] = []
    slug = None
    version = 1
    if publish:
        slug_key = await reserve_slug(deps, draft.title, article_id)
        keys.append(slug_key)
        slug = slug_key[1]
        version = 2
        try:
            step = await deps.reservations.reserve_step(VERSION_KIND, article_id, version, author)
        except BaseException:
            await deps.reservations.release(*slug_key)
            raise
        keys.append((VERSION_KIND, step, author))
    events: list[Event] = [
        ArticleDrafted(
            article_id=article_id,
            author_id=author,
            version=1,
            title=draft.title,
            content=draft.content,
            tags=draft.tags,
            slug=slug,
            description=draft.description,
        )
    ]
    if publish:
        state = ArticleState(article_id, author, 1, "draft", draft, slug)
        events.append(_carrying(ArticlePublished, state, draft)(version, slug))
    at = datetime.now(UTC)
    try:
        if keys:
            # A slug is looked up for its holder only: the answer need not wait to confirm it.
            position = await deps.record_holding_all(
                caller, keys, *events, settled_first=False, at=at
            )
        else:
            position = await deps.record(caller, *events, at=at)
    except Indeterminate as unsure:
        # The draft may still be recorded: whoever waits for it learns its id with it.
        raise unsure.then(lambda pos: Changed(article_id, version, pos, slug, at)) from unsure
    return Changed(article_id, version, position, slug, at)


async def edit_draft(
    state: ArticleState | None,
    draft: Draft,
    based_on: int | None,
    deps: CommandDeps,
    caller: Caller,
) -> Changed:
    current = _owned(state, caller)
    if based_on is not None and based_on not in (current.version, _shown_version(current)):
        # Either way the client's copy is not the draft's: read it again ("stale").
        said = (
            f"the draft changed since version {based_on}"
            if based_on < current.version
            else f"the draft has no version {based_on} yet"
        )
        raise Conflict(f"{said} (now {current.version})", fields={"version": "stale"})
    make = _carrying(DraftEdited, current, draft)
    # An article's slug is its public address: it follows the title as it is published,
    # so an edit (of a draft, of a published or withdrawn article) neither moves it (which
    # would show an unpublished title in every link) nor frees it for another article to
    # take, nor reserves the edited title's (which would tell its author's rivals the
    # unpublished title). The publish that makes the title public moves it.
    return await _change(current, deps, caller, make)


async def publish_article(state: ArticleState | None, deps: CommandDeps, caller: Caller) -> Changed:
    current = _owned(state, caller)
    shown = _shown_version(current)
    if shown is not None:
        # What readers see is the draft as it stands: recorded, the publish would make a
        # version that changes nothing, and move the article's update time. Nothing is;
        # the answer names the version readers see, which an edit may be based on.
        return Changed(current.id, shown, Position(), current.slug, datetime.now(UTC))
    make = _carrying(ArticlePublished, current, current.draft)
    return await _change(current, deps, caller, make, retitled=current.draft.title)


async def publish_edited(
    state: ArticleState | None, draft: Draft, deps: CommandDeps, caller: Caller
) -> Changed:
    """An edit published at once (RealWorld's update, which has no drafts): the edit and
    its publication are one append, so a failure never leaves an edit recorded that the
    caller was told did not happen."""
    current = _owned(state, caller)
    edit, publish = (_carrying(e, current, draft) for e in (DraftEdited, ArticlePublished))
    return await _change(current, deps, caller, edit, publish, retitled=draft.title)


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
        lambda v, _: ArticleWithdrawn(
            article_id=current.id, author_id=current.author_id, version=v
        ),
    )


async def delete_article(state: ArticleState | None, deps: CommandDeps, caller: Caller) -> Changed:
    current = _owned(state, caller)
    done = await _change(
        current,
        deps,
        caller,
        lambda v, _: ArticleDeleted(article_id=current.id, author_id=current.author_id, version=v),
    )
    await free_slug_later(deps, current.slug, current.id)
    return done


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


def _shown_version(current: ArticleState) -> int | None:
    """The version readers see, if it is the draft as it stands: published at the draft's
    version, or at one the draft is again (an edit that changed nothing, or one undone).
    A change based on it is decided on the draft: none of the draft is lost by it."""
    shown = current.published_version
    if current.status != "published" or shown is None:
        return None
    return shown if shown == current.version or current.published == current.draft else None


def _carrying(
    event: type[DraftEdited] | type[ArticlePublished], current: ArticleState, draft: Draft
) -> _Make:
    """A change that carries a whole draft: an edit (the new draft), a publish (the draft
    as it stands)."""
    return lambda v, slug: event(
        article_id=current.id,
        author_id=current.author_id,
        version=v,
        title=draft.title,
        content=draft.content,
        tags=draft.tags,
        slug=slug,
        description=draft.description,
    )


async def _change(
    current: ArticleState,
    deps: CommandDeps,
    caller: Caller,
    *makes: _Make,
    retitled: str | None = None,
) -> Changed:
    """Record the changes ``makes`` make, one version each, in one append. ``retitled``:
    the title they give the article, whose slug follows it (a new slug reserved with the
    versions, the old freed after)."""
    keys: list[Key] = []
    try:
        # Every step in order: the first refuses a change decided on an older state, and
        # holding it keeps any other change from the steps after it.
        for version in range(current.version + 1, current.version + len(makes) + 1):
            keys.append(await _reserve_version(deps, current, version))
        slug = current.slug
        if retitled is not None and not same_base(current.slug, retitled):
            keys.append(await reserve_slug(deps, retitled, current.id))
            slug = keys[-1][1]
    except BaseException:
        for key in keys:
            await deps.reservations.release(*key)
        raise
    first = current.version + 1
    version = current.version + len(makes)
    events = [make(first + i, slug) for i, make in enumerate(makes)]
    at = datetime.now(UTC)
    try:
        position = await deps.record_holding_all(caller, keys, *events, at=at)
    except Indeterminate as unsure:
        raise unsure.then(lambda pos: Changed(current.id, version, pos, slug, at)) from unsure
    await _forget_older_versions(deps, current.id, version)
    if slug != current.slug:
        await free_slug_later(deps, current.slug, current.id)
    return Changed(current.id, version, position, slug, at)


async def _reserve_version(deps: CommandDeps, current: ArticleState, version: int) -> Key:
    try:
        value = await deps.reservations.reserve_step(
            VERSION_KIND, current.id, version, current.author_id
        )
    except Conflict:
        raise Conflict(
            "the article was changed by another request; reload and retry",
            fields={"version": "stale"},
        ) from None
    return (VERSION_KIND, value, current.author_id)


async def _forget_older_versions(deps: CommandDeps, article_id: str, version: int) -> None:
    """The newest version's key alone refuses stale changes; older ones would only pile up.
    The change is recorded already, so this is retried off the request path, never an
    error in the caller's answer."""

    async def forget() -> None:
        await deps.reservations.release_steps_before(VERSION_KIND, article_id, version)

    await deps.after("forget_older_versions", forget, article_id=article_id)
