"""RealWorld's articles by slug, the feed, favorites and tags: the same commands and read
models as ``/v1``. A RealWorld article is published as it is written: a create is a draft
and its publication, an update an edit and its publication."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.article_queries import abstract
from bloghub.api.auth import USERS_READS, user_queries
from bloghub.api.conduit.errors import (
    ConduitError,
    blank,
    conduit_body,
    forbidden,
    not_found,
    path_text,
    query_text,
    query_value,
    shows_nothing,
)
from bloghub.api.conduit.queries import Filters
from bloghub.api.conduit.reading import (
    applied_if_held,
    articles_out,
    caught_up,
    maybe_signed_in,
    people,
    queries,
    shown_as_author,
    signed_in,
)
from bloghub.api.conduit.schemas import NewArticleIn, UpdateArticleIn
from bloghub.api.conduit.views import Listed, article_view, listed
from bloghub.api.consistent import (
    Reads,
    forget_own_write,
    found_or_settled,
    visibility_written,
    written,
)
from bloghub.api.http import JSON, container
from bloghub.api.idempotency import answering, idempotent
from bloghub.api.v1.article_schemas import filter_tag
from bloghub.api.v1.articles import ARTICLES_READS, READER_READS, count_read
from bloghub.api.v1.articles import queries as article_queries
from bloghub.api.v1.interactions import INTERACTIONS_READS, LIKE_DECIDES, target_of
from bloghub.api.v1.sessions import caller, client_ip
from bloghub.api.v1.social import FEED_READS, RELATIONS_READS
from bloghub.commands.articles import (
    ArticleState,
    Changed,
    Draft,
    create_article,
    delete_article,
    publish_edited,
)
from bloghub.commands.interactions import like
from bloghub.commands.slugs import SLUG
from bloghub.commands.users import USERNAME, username_key
from bloghub.errors import Conflict
from bloghub.events.position import Position
from bloghub.events.topics import Family

# Readers see an article with its author (and whether they follow them) and its favorites.
READS = [*READER_READS, *RELATIONS_READS]
MAX_LIMIT, DEFAULT_LIMIT = 100, 20
# The store's bound on an offset (a bigint): past it the query itself is refused.
MAX_OFFSET = 2**63 - 1


_DIGITS = re.compile(r"-?[0-9]+")


def _number(request: Request, name: str, default: int, least: int, most: int | None = None) -> int:
    raw = query_value(request, name)
    if raw is None:
        return default
    # Digits as a query string writes them: Python's int() also takes "1_0", "+3", " 3 "
    # and other scripts' digits ("٣").
    try:
        if not _DIGITS.fullmatch(raw):
            raise ValueError(raw)
        value = int(raw)  # past 4,300 digits, a ValueError too
    except ValueError:
        raise ConduitError(422, {name: ["is not a number"]}) from None
    if value < least:
        raise ConduitError(422, {name: [f"must be greater than or equal to {least}"]})
    if most is not None and value > most:
        raise ConduitError(422, {name: [f"must be less than or equal to {most}"]})
    return value


def _paging(request: Request) -> tuple[int, int]:
    """Offset and limit of a list or the feed; a limit over ``MAX_LIMIT`` gives that many."""
    offset = _number(request, "offset", 0, 0, MAX_OFFSET)
    return offset, min(_number(request, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)


async def _user_named(request: Request, name: str | None) -> str | None:
    """The id of the account called ``name``; "" when there is none (nothing matches). A
    name the write-side index holds that the read model has not applied yet (a profile
    page listing a new account's articles) is waited for, as the profile itself is."""
    if name is None:
        return None
    row = await user_queries(request).by_username(name)
    if row is None and await applied_if_held(
        request, USERS_READS, Family.USERS, USERNAME, username_key(name)
    ):
        row = await user_queries(request).by_username(name)
    return "" if row is None or row.erased else row.id


def _filter_text(request: Request, name: str) -> str | None:
    """A list filter; an empty or blank one (spaces, tabs or invisible characters alone,
    as a field is blank) is no filter, as the reference implementation has it (a front
    end that sends every field of its form sends ``tag=`` for "any")."""
    raw = query_value(request, name)
    if raw is None or shows_nothing(raw):
        return None
    return query_text(request, name)


def _tag_named(request: Request) -> str | None:
    """The tag filter as tags are kept (trimmed, NFC, single spaces), so it finds them as
    /v1's does; a text no tag can be finds nothing (RealWorld has no 422 for a filter)."""
    raw = _filter_text(request, "tag")
    if raw is None:
        return None
    try:
        return filter_tag(raw)
    except ValueError:
        return raw


async def listing(request: Request) -> Response:
    offset, limit = _paging(request)
    claims = await maybe_signed_in(request)
    me = claims.user_id if claims else None
    await caught_up(request, READS, me)
    author = await _user_named(request, _filter_text(request, "author"))
    fan = await _user_named(request, _filter_text(request, "favorited"))
    if author == "" or fan == "":
        return JSON({"articles": [], "articlesCount": 0})
    filters = Filters(tag=_tag_named(request), author_id=author, liked_by=fan)
    page = await queries(request).published(filters, offset, limit)
    items = await articles_out(request, me, [listed(r) for r in page.rows], body=False)
    return JSON({"articles": items, "articlesCount": page.total})


async def feed(request: Request) -> Response:
    offset, limit = _paging(request)
    claims = await signed_in(request)
    await caught_up(request, [*FEED_READS, *RELATIONS_READS], claims.user_id)
    q = queries(request)
    ids, total = await q.feed(claims.user_id, offset, limit)
    rows = await q.published_by_id(ids)
    # The feed's copy may list an article the articles read model does not show (yet, or
    # any more: the two projectors apply apart). On the last page the count leaves it out
    # as the page does, or a front end's page links would promise a page that comes back
    # empty; before it, offsets count the feed's rows, so the count stays theirs (less,
    # and the last article could not be reached).
    shown = [listed(rows[i]) for i in ids if i in rows]
    items = await articles_out(request, claims.user_id, shown, body=False)
    last = offset + len(ids) >= total
    count = total - (len(ids) - len(shown)) if last else total
    return JSON({"articles": items, "articlesCount": count})


async def _published(request: Request, me: str | None, *, settle: bool = False) -> Listed:
    """The published article the path names. One found withdrawn (or a draft) is, when
    ``settle``, looked for again once the read model has passed its partition's records
    written before this request: a favorite or a comment sent just after its author's
    republish was answered finds it, not a 404 a client takes as final."""
    await caught_up(request, READS, me)
    slug = path_text(request, "slug", "article")
    row = await queries(request).by_slug(slug)
    if (row is None or row.status != "published") and await applied_if_held(
        request, ARTICLES_READS, Family.ARTICLES, SLUG, slug
    ):
        row = await queries(request).by_slug(slug)
    if settle and row is not None and row.status != "published":
        article_id = str(row.id)
        row = await found_or_settled(
            request,
            ARTICLES_READS,
            Family.ARTICLES,
            lambda: queries(request).by_id(article_id),
            article_id,
            enough=lambda found: found.status == "published",
        )
    if row is None or row.status != "published":
        raise not_found("article")
    return listed(row)


async def _still_shown(request: Request, me: str, reads: Reads) -> Listed:
    """The published article the path names, decided on ``reads`` as of the article's last
    withdraw or delete too, whoever made it: a favorite or a comment after a withdraw was
    answered finds the article gone, however far the projectors lag; one after a
    republish was answered finds it shown."""
    article = await _published(request, me, settle=True)
    shown = await container(request).own_writes.visibility_changed(article.id)
    if shown:
        await caught_up(request, [*reads, *ARTICLES_READS], me, also=shown)
        article = await _published(request, me)
    return article


async def _one(request: Request, me: str | None, article: Listed) -> dict[str, Any]:
    (out,) = await articles_out(request, me, [article], body=True)
    return {"article": out}


async def read(request: Request) -> Response:
    claims = await maybe_signed_in(request)
    me = claims.user_id if claims else None
    article = await _published(request, me)
    answer = JSON(await _one(request, me, article))
    if request.method != "HEAD":  # served: counted as a read, as on /v1
        count_read(container(request), article.id, article.author_id, me, client_ip(request))
    return answer


async def create(request: Request) -> Response:
    claims = await signed_in(request)
    new = (await conduit_body(request, NewArticleIn)).article
    shown_as_author(request)
    draft = Draft(new.title, new.body, new.tagList, new.description)

    async def respond(done: Changed) -> Response:
        shown = _as_written(done, claims.user_id, draft, done.at)
        return await _answer(request, claims.user_id, done, shown, status=201)

    async def run() -> Response:
        deps, who = container(request).commands, caller(request, claims.user_id)
        return await answering(create_article(draft, deps, who, publish=True), respond)

    # An Idempotency-Key makes a retried (or double-clicked) Publish one article, as on /v1.
    return await idempotent(request, claims.user_id, run)


async def update(request: Request) -> Response:
    claims = await signed_in(request)
    sent = (await conduit_body(request, UpdateArticleIn)).article
    changes = {name: getattr(sent, name) for name in sent.model_fields_set}
    for name in ("title", "description", "body"):
        if name in changes and changes[name] is None:
            raise blank(name)
    shown_as_author(request)

    async def change(row: Any, state: ArticleState) -> Response:
        old = state.draft
        draft = Draft(
            changes.get("title") or old.title,
            changes.get("body") or old.content,
            old.tags if changes.get("tagList") is None else changes["tagList"],
            _description(changes.get("description"), row, old),
        )
        if _as_published(row, state, draft):
            # Nothing to change (an editor saved as it was): no event, and the article
            # keeps its update time.
            return JSON(await _one(request, claims.user_id, listed(row)))
        deps, who = container(request).commands, caller(request, claims.user_id)
        done = await publish_edited(state, draft, deps, who)
        # Published before, it keeps its first publication; a `/v1` draft is first
        # published now.
        # Re-published as it was when withdrawn, it keeps its update time.
        updated_at = row.updated_at if _shows_as_published(row, draft) else done.at
        shown = _as_written(
            done, claims.user_id, draft, row.published_at or done.at, updated_at=updated_at
        )
        return await _answer(request, claims.user_id, done, shown)

    return await _on_latest(request, claims.user_id, change)


def _description(sent: str | None, row: Any, old: Draft) -> str | None:
    """The description an update leaves: the one sent, unless it is the one the article
    shows. An article without one (written through ``/v1``) shows the abstract of its
    body, which an editor sends back as it loaded it: that is no description written,
    whether the article is still published or was withdrawn since it was loaded."""
    shown = row.published_content is not None and sent == listed(row).description
    if not sent or shown:
        return old.description
    return sent


# The pauses before each new try of a RealWorld change another request of the author's
# got in first with (a double-clicked Publish, two tabs saving): about 0.8 s in all,
# enough for the other request's append to be answered and projected.
STALE_RETRY_PAUSES_S = (0.02, 0.05, 0.1, 0.2, 0.4)


async def _on_latest(
    request: Request,
    user_id: str,
    change: Callable[[Any, ArticleState], Awaitable[Response]],
) -> Response:
    """``change`` decided on the article as the author's last write left it. RealWorld's
    writes name no version, so a change refused because another request of the author's
    changed the article first (``version: stale``, which a RealWorld client cannot act
    on) is decided again on the article as that request left it; the last applied wins,
    as RealWorld clients expect."""
    article_id: str | None = None
    for pause in (*STALE_RETRY_PAUSES_S, None):
        # Again by its id: the request that got in first may have moved the slug (a
        # double-clicked Save of a new title), freeing the one in the path.
        row, state = await _own_state(request, user_id, article_id)
        try:
            return await change(row, state)
        except Conflict as exc:
            if pause is None or exc.fields.get("version") != "stale":
                raise
        article_id = str(row.id)
        forget_own_write(request)
        await asyncio.sleep(pause)
    raise AssertionError("unreachable: the last try raises")


def _as_published(row: Any, state: ArticleState, draft: Draft) -> bool:
    """Whether ``draft`` is the article as published. An edit of it waiting as a ``/v1``
    draft is left waiting: an editor saving the article as it loaded it neither publishes
    nor throws that edit away."""
    return state.status == "published" and _shows_as_published(row, draft)


def _shows_as_published(row: Any, draft: Draft) -> bool:
    """Whether readers would see ``draft`` as the article was last published (withdrawn
    since or not): published so, it keeps its update time (projections/articles.py)."""
    return (
        row.published_content is not None
        and (row.published_title, row.published_content, row.published_description)
        == (draft.title, draft.content, draft.description)
        and list(row.published_tags or []) == draft.tags
    )


async def remove(request: Request) -> Response:
    claims = await signed_in(request)

    async def change(_: Any, state: ArticleState) -> Response:
        deps, who = container(request).commands, caller(request, claims.user_id)
        done = await delete_article(state, deps, who)
        return await visibility_written(
            request, Response(status_code=204), done.position, claims.user_id, done.article_id
        )

    return await _on_latest(request, claims.user_id, change)


async def _own_state(
    request: Request, user_id: str, article_id: str | None = None
) -> tuple[Any, ArticleState]:
    """The article the slug (or, once known, the id) names, as of the caller's own last
    write; 404 if none, 403 if it is another's. Another's article that is not published
    is 404, as a read of it is: a 403 would tell that a draft or withdrawn article is
    there."""
    await caught_up(request, ARTICLES_READS, user_id)
    if article_id is None:
        row = await queries(request).by_slug(path_text(request, "slug", "article"))
    else:
        row = await queries(request).by_id(article_id)
    if row is None:
        raise not_found("article")
    if str(row.author_id) != user_id:
        if row.status != "published":
            raise not_found("article")
        raise forbidden("article")
    state = await article_queries(request).state(str(row.id))
    if state is None:
        raise not_found("article")
    return row, state


async def _answer(
    request: Request, user_id: str, done: Changed, shown: Listed, status: int = 200
) -> Response:
    """The article as the author's writes left it, from what they decided (no read model
    is waited for: once the log has the writes, nothing may turn the answer into an
    error). The caller's next reads wait for these writes."""
    out = JSON(await _one(request, user_id, shown), status_code=status)
    return await written(request, out, done.position, user_id)


def _as_written(
    done: Changed,
    author_id: str,
    draft: Draft,
    created_at: datetime,
    *,
    updated_at: datetime | None = None,
) -> Listed:
    return Listed(
        id=done.article_id,
        author_id=author_id,
        slug=done.slug or done.article_id,
        title=draft.title,
        description=draft.description or abstract(draft.content),
        body=draft.content,
        tags=draft.tags,
        created_at=created_at,
        updated_at=updated_at or done.at,
    )


# --- favorites: the same likes as /v1 -----------------------------------------------------


async def favorite(request: Request) -> Response:
    return await _favorite(request, on=True)


async def unfavorite(request: Request) -> Response:
    return await _favorite(request, on=False)


async def _favorite(request: Request, *, on: bool) -> Response:
    claims = await signed_in(request)
    me = claims.user_id
    # Decided, and counted, as of the caller's own last write: the count the answer shows
    # is the one read with the caller's mark, moved by this change if it changes anything.
    # Read after the write, a count could already hold this like (or a concurrent double
    # submit's), and adding it again would show one too many.
    decides = [*LIKE_DECIDES, *INTERACTIONS_READS]
    await caught_up(request, decides, me)
    article = await _still_shown(request, me, decides)
    # Another author's article just published may be shown by the articles read model
    # before this one has it: waited for, not said not to exist; and read before the
    # caller's mark and count, which the same projector keeps.
    target = await target_of(request, article.id)
    before = await queries(request).favorite(me, article.id)
    # Read before the change: once it is recorded, nothing may turn the answer into an error.
    (author,) = (await people(request, me, [article.author_id])).values()
    count, position = before.count, Position()
    if before.liked != on:
        position = await like(target, on, container(request).commands, caller(request, me))
        count = max(0, count + (1 if on else -1))
    out = article_view(article, author, on, count, body=True)
    return await written(request, JSON({"article": out}), position, me)


async def tags(request: Request) -> Response:
    claims = await maybe_signed_in(request)
    await caught_up(request, ARTICLES_READS, claims.user_id if claims else None)
    counted = await article_queries(request).tags()
    return JSON({"tags": [tag for tag, _ in counted]})
