"""The RealWorld (Conduit) API under ``/api``: a second face of the same commands, events
and read models as ``/v1``, with RealWorld's paths, bodies, statuses and error shape.
It has its own specification (RealWorld's OpenAPI document), so it is mounted apart from
the routes ``/openapi.json`` documents."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute, Router
from starlette.types import Receive, Scope, Send

from bloghub.api.conduit import articles, comments, profiles, users
from bloghub.api.conduit.errors import conduit, response
from bloghub.api.http import Endpoint, Handler

PREFIX = "/api"


def _ep(
    method: str, path: str, handler: Handler, summary: str, tag: str, *statuses: int
) -> Endpoint:
    """An operation and the error statuses the spec gives it. 422 always; 401 always too,
    for a token that is sent and bad (the spec leaves it out of a few public reads, yet a
    client must learn that its token is no good, wherever it sent it)."""
    return Endpoint(method, path, conduit(handler, frozenset({401, 422, *statuses})), summary, tag)


ENDPOINTS = [
    _ep("POST", "/users/login", users.login, "Log in", "users", 401),
    _ep("POST", "/users", users.register, "Register", "users", 409),
    _ep("GET", "/user", users.current, "The current user", "users", 401),
    _ep("PUT", "/user", users.update, "Update the current user", "users", 401),
    _ep("GET", "/profiles/{username}", profiles.profile, "A profile", "profiles", 401, 404),
    _ep("POST", "/profiles/{username}/follow", profiles.follow, "Follow", "profiles", 401, 404),
    _ep(
        "DELETE", "/profiles/{username}/follow", profiles.unfollow, "Unfollow", "profiles", 401, 404
    ),
    _ep("GET", "/articles/feed", articles.feed, "Articles of followed users", "articles", 401),
    _ep("GET", "/articles", articles.listing, "Recent articles", "articles", 401),
    _ep("POST", "/articles", articles.create, "Create an article", "articles", 401, 409),
    _ep("GET", "/articles/{slug}", articles.read, "An article", "articles", 404),
    _ep("PUT", "/articles/{slug}", articles.update, "Update an article", "articles", 401, 403, 404),
    _ep(
        "DELETE",
        "/articles/{slug}",
        articles.remove,
        "Delete an article",
        "articles",
        401,
        403,
        404,
    ),
    _ep("GET", "/articles/{slug}/comments", comments.listing, "Comments", "comments", 401, 404),
    _ep("POST", "/articles/{slug}/comments", comments.create, "Comment", "comments", 401, 404),
    _ep(
        "DELETE",
        "/articles/{slug}/comments/{comment_id}",
        comments.remove,
        "Delete a comment",
        "comments",
        401,
        403,
        404,
    ),
    _ep("POST", "/articles/{slug}/favorite", articles.favorite, "Favorite", "favorites", 401, 404),
    _ep(
        "DELETE",
        "/articles/{slug}/favorite",
        articles.unfavorite,
        "Unfavorite",
        "favorites",
        401,
        404,
    ),
    _ep("GET", "/tags", articles.tags, "Tags", "tags"),
]


async def _no_such_path(scope: Scope, receive: Receive, send: Send) -> None:
    await response(404, {"path": ["not found"]})(scope, receive, send)


def router(routes: Callable[[Sequence[Endpoint]], Sequence[BaseRoute]]) -> Router:
    """The routes of ``ENDPOINTS`` (made by the app's ``routes``), with a path none of them
    has answered as a RealWorld 404."""
    return Router(routes=list(routes(ENDPOINTS)), default=_no_such_path)
