"""The caller's notifications: the list (newest first), marking them read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.auth import require_caller
from bloghub.api.consistent import mark_stale, pinned, wait_for_reads, written
from bloghub.api.http import JSON, Endpoint, container, parse_body, parse_query
from bloghub.api.notification_queries import CURSOR_PATTERN, NotificationQueries
from bloghub.api.v1.article_schemas import PageQuery
from bloghub.api.v1.path_ids import Id
from bloghub.api.v1.schemas import CURSOR, Input, Rule
from bloghub.api.v1.sessions import caller
from bloghub.commands.notifications import mark_read
from bloghub.errors import NoPage, NotFound
from bloghub.events.topics import Family
from bloghub.readmodels import notification_view

NOTIFICATION_READS = [
    (
        "notifications",
        (Family.SOCIAL, Family.COMMENTS, Family.INTERACTIONS, Family.USERS, Family.ARTICLES),
    )
]


def _flag(value: object) -> object:
    return True if value == "" else value  # a bare ?unread means yes


_POSITION = Rule(CURSOR_PATTERN, "no page at that cursor")


class NotificationsQuery(PageQuery):
    # A cursor's characters and length, as the other lists take; its own form is the
    # handler's to check (404 "no page" otherwise, as there), so a cursor another list
    # handed out is told to start again, not told its length.
    cursor: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=512,
                description="next_cursor of the previous page",
            ),
            CURSOR,
        ]
        | None
    ) = None
    unread: Annotated[
        bool, BeforeValidator(_flag), Field(description="only unread notifications")
    ] = False


class NotificationOut(BaseModel):
    id: str
    kind: Literal["follower", "comment", "reply", "like_milestone"]
    actor_id: str | None = None
    article_id: str | None = None
    comment_id: str | None = None
    milestone: int | None = None
    created_at: datetime
    read: bool


class NotificationsPage(BaseModel):
    notifications: list[NotificationOut]
    next_cursor: str | None
    unread: int


def _exactly_one_way(schema: dict[str, Any]) -> None:
    """The document says what ``MarkReadIn`` checks: one way of marking, not null, not
    both."""
    properties = schema["properties"]
    for name in ("ids", "up_to"):
        given = [o for o in properties[name].pop("anyOf", []) if o.get("type") != "null"]
        if given:
            properties[name].update(given[0])
        properties[name].pop("default", None)
    schema["oneOf"] = [{"required": ["ids"]}, {"required": ["up_to"]}]


class MarkReadIn(Input):
    """Either ``ids`` or ``up_to`` (everything up to and including that notification)."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_way)

    ids: Annotated[list[Id], Field(min_length=1, max_length=100)] | None = None
    up_to: Id | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        # Sent as null is not left out: the document's types have no null.
        if any(getattr(self, f) is None for f in self.model_fields_set):
            raise ValueError("ids and up_to are never null: send either one")
        if (self.ids is None) == (self.up_to is None):
            raise ValueError("send either ids or up_to")
        return self


def queries(request: Request) -> NotificationQueries:
    return NotificationQueries(container(request).read_engine, pinned(request))


async def unread_count(request: Request, user_id: str) -> int:
    """The caller's unread count, after their own marks (read-your-writes: the profile
    answer is marked stale if the wait ran out)."""
    stale = await wait_for_reads(request, NOTIFICATION_READS, user_id)
    request.state.stale = getattr(request.state, "stale", False) or stale
    return await queries(request).unread(user_id)


async def list_notifications(request: Request) -> Response:
    claims = await require_caller(request)
    q = parse_query(request, NotificationsQuery)
    if q.cursor is not None and not _POSITION.matches(q.cursor):
        # Of a cursor's characters but not this list's form: no page, as in the other lists.
        raise NoPage()
    stale = await wait_for_reads(request, NOTIFICATION_READS, claims.user_id)
    reads = queries(request)
    page, unread = await reads.page(claims.user_id, unread=q.unread, limit=q.limit, cursor=q.cursor)
    body = {
        "notifications": [_public(notification_view(row)) for row in page.items],
        "next_cursor": page.next_cursor,
        "unread": unread,
    }
    return mark_stale(JSON(body), stale or request.state.stale)


def _public(view: dict[str, object]) -> dict[str, object]:
    view.pop("user_id", None)  # the caller's own, always
    return view


async def read_notifications(request: Request) -> Response:
    claims = await require_caller(request)
    body = await parse_body(request, MarkReadIn)
    up_to, ids = None, [str(i) for i in body.ids or ()]
    if ids:
        # Only the caller's own notifications are marked: any other id would be kept as a
        # mark for good (marks wait for notifications that may come later in the log), so
        # a client could grow the table without bound. One no longer there (its comment
        # deleted, say) has nothing left to mark.
        ids = await queries(request).mine(claims.user_id, ids)
        if not ids:
            return Response(status_code=204)
    if body.up_to is not None:
        up_to = await queries(request).position_of(claims.user_id, str(body.up_to))
        if up_to is None:
            raise NotFound("no such notification", fields={"up_to": "not one of yours"})
    position = await mark_read(
        container(request).commands,
        caller(request),
        user_id=claims.user_id,
        ids=ids,
        up_to=up_to,
    )
    return await written(request, Response(status_code=204), position, claims.user_id)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/notifications",
        list_notifications,
        "The caller's notifications, newest first",
        "notifications",
        response=NotificationsPage,
        auth=True,
        errors=(401, 404, 422),
        params=NotificationsQuery,
        headers={"Bloghub-Stale": "true when the read-your-writes wait ran out"},
    ),
    Endpoint(
        "POST",
        "/v1/notifications/read",
        read_notifications,
        "Mark notifications read: some by id, or every one up to one",
        "notifications",
        body=MarkReadIn,
        status=204,
        auth=True,
        errors=(400, 401, 404, 415, 422),
        headers={"Bloghub-Position": "Log position of the write, for Bloghub-After"},
    ),
]
