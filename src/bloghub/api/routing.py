"""Starlette's router, with the routes a request could match looked up by its method, the
path's first two segments and its number of segments instead of tried one by one: with some seventy
routes, the hot reads near the end of the list spent more time in failed regular
expressions than in their own work."""

from __future__ import annotations

from collections.abc import Sequence

from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import Message, Receive, Scope, Send

Key = tuple[str, int, tuple[str, ...]]


def _key(method: str, path: str) -> Key:
    return method, path.count("/"), tuple(path.split("/", 3)[1:3])


def _could_match(route: BaseRoute, key: Key) -> bool:
    """False only when no request with ``key`` can fully match ``route`` (a parameter
    matches one whole segment, unless it is a ``path`` parameter)."""
    if not isinstance(route, Route) or ":path}" in route.path:
        return True
    method, count, segments = key
    _, route_count, template = _key(method, route.path)
    return (
        (route.methods is None or method in route.methods)
        and count == route_count
        and len(template) == len(segments)
        and all(t == k or "{" in t for t, k in zip(template, segments, strict=True))
    )


def index(routes: Sequence[BaseRoute]) -> dict[Key, list[BaseRoute]]:
    """For every first-segments key a route names, the routes that could match it, in the
    router's order (so the first full match is the one Starlette would pick)."""
    keys = {
        _key(method, r.path)
        for r in routes
        if isinstance(r, Route)
        for method in (r.methods or ("GET",))
    }
    return {key: [r for r in routes if _could_match(r, key)] for key in keys}


class IndexedRouter(Router):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._index: dict[Key, list[BaseRoute]] = {}
        self._indexed = -1  # how many routes the index was built from (routes are only added)

    def candidates(self, scope: Scope) -> Sequence[BaseRoute]:
        """The routes that could fully match an HTTP request, in the router's order."""
        if self._indexed != len(self.routes):
            self._index, self._indexed = index(self.routes), len(self.routes)
        return self._index.get(_key(scope["method"], get_route_path(scope)), ())

    def endpoint_of(self, scope: Scope) -> object | None:
        """The handler an HTTP request would reach (under a mount too), None if none: what
        answers before routing (a 429) is counted under its route all the same."""
        # No candidate: a mount's path (``/api``), which the index leaves to the walk.
        return _endpoint_in(self.candidates(scope) or self.routes, scope)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.candidates(scope):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self)
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        # No full match among the candidates: Starlette's own walk decides (405 for a
        # known path with another method, a redirect for a missing slash, or 404).
        await super().app(scope, receive, _slash_redirects(scope, send))


def _endpoint_in(routes: Sequence[BaseRoute], scope: Scope) -> object | None:
    """As Starlette picks: the first full match, else the first partial one (the path's
    route for another method, whose 405 is counted under it too)."""
    partial: object | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL and isinstance(route, Mount):
            return _endpoint_in(route.routes, {**scope, **child})
        if match is Match.FULL:
            return getattr(route, "endpoint", None)
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "endpoint", None)
    return partial


def _encoded_slash(scope: Scope) -> bool:
    """Whether the path holds a slash the request wrote as ``%2F``: part of a name, which
    Starlette (matching and redirecting the decoded path) takes for a separator, so a
    redirect would name another path: ``<slug>%2F`` another slug, ``jake%2Ffollow/`` the
    follow of ``jake``."""
    raw: bytes | None = scope.get("raw_path")
    return raw is not None and b"%2f" in raw.lower()


def _slash_redirects(scope: Scope, send: Send) -> Send:
    """Starlette's slash redirect (also a mounted router's), as ours. It strips every
    slash the decoded path ends in, so ``/api/articles/a%2F`` would be sent to article
    ``a``, another resource: a path whose name ends in an encoded slash is no path with a
    trailing slash but one no route has, so it is the 404 (raised before anything is sent,
    for the app's handler to answer in the path's API's shape).

    Only a trailing slash is taken away, never one added: Starlette would send ``/api``
    to ``/api/``, the mount's root, which is no path either (a 404 for one). And the
    path redirected to is the request's own as sent, its slashes stripped: Starlette
    writes the decoded path back, so an escaped ``%`` became a live escape (``%2563`` sent
    to ``%63``, which the client reads as ``c``: another resource) or a broken one.

    A redirect names the URL absolutely, from the request's own Host header: behind a
    cache or a proxy that passes Host on, anyone could have it point elsewhere. Only the
    path and query are kept, as the request wrote them (a relative reference, RFC 9110)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] in (307, 308):
            if _encoded_slash(scope) or not scope["path"].endswith("/"):
                raise HTTPException(status_code=404)
            raw: bytes = scope.get("raw_path") or scope["path"].encode()
            # One leading slash: "//host/..." would name another host.
            relative = b"/" + raw.split(b"?", 1)[0].strip(b"/")
            query: bytes = scope.get("query_string", b"")
            if query:
                relative += b"?" + query
            headers = [
                (name, relative if name == b"location" else value)
                for name, value in message.get("headers", [])
            ]
            message = {**message, "headers": headers}
        await send(message)

    return sending
