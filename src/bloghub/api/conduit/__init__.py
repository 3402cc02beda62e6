"""The RealWorld (Conduit) API under ``/api``: a second face of the same commands, events
and read models as ``/v1``, with RealWorld's paths, bodies, statuses and error shape.
It has its own specification (RealWorld's OpenAPI document), so it is mounted apart from
the routes ``/openapi.json`` documents."""

from __future__ import annotations

from bloghub.api.conduit import articles, comments, profiles, users
from bloghub.api.conduit.errors import conduit
from bloghub.api.http import Endpoint, Handler

PREFIX = "/api"


def _ep(method: str, path: str, handler: Handler, summary: str, tag: str) -> Endpoint:
    return Endpoint(method, path, conduit(handler), summary, tag)


ENDPOINTS = [
    _ep("POST", "/users/login", users.login, "Log in", "users"),
    _ep("POST", "/users", users.register, "Register", "users"),
    _ep("GET", "/user", users.current, "The current user", "users"),
    _ep("PUT", "/user", users.update, "Update the current user", "users"),
    _ep("GET", "/profiles/{username}", profiles.profile, "A profile", "profiles"),
    _ep("POST", "/profiles/{username}/follow", profiles.follow, "Follow", "profiles"),
    _ep("DELETE", "/profiles/{username}/follow", profiles.unfollow, "Unfollow", "profiles"),
    _ep("GET", "/articles/feed", articles.feed, "Articles of followed users", "articles"),
    _ep("GET", "/articles", articles.listing, "Recent articles", "articles"),
    _ep("POST", "/articles", articles.create, "Create an article", "articles"),
    _ep("GET", "/articles/{slug}", articles.read, "An article", "articles"),
    _ep("PUT", "/articles/{slug}", articles.update, "Update an article", "articles"),
    _ep("DELETE", "/articles/{slug}", articles.remove, "Delete an article", "articles"),
    _ep("GET", "/articles/{slug}/comments", comments.listing, "Comments", "comments"),
    _ep("POST", "/articles/{slug}/comments", comments.create, "Comment", "comments"),
    _ep(
        "DELETE",
        "/articles/{slug}/comments/{comment_id}",
        comments.remove,
        "Delete a comment",
        "comments",
    ),
    _ep("POST", "/articles/{slug}/favorite", articles.favorite, "Favorite", "favorites"),
    _ep("DELETE", "/articles/{slug}/favorite", articles.unfavorite, "Unfavorite", "favorites"),
    _ep("GET", "/tags", articles.tags, "Tags", "tags"),
]
