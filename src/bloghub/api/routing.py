"""Starlette's router, with the routes a request could match looked up by its first two
path segments instead of tried one by one: with some seventy routes, the hot reads near the
end of the list spent more time in failed regular expressions than in their own work."""

from __future__ import annotations

from collections.abc import Sequence

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

Key = tuple[str, ...]


def _key(path: str) -> Key:
    return tuple(path.split("/", 3)[1:3])


def _could_match(route: BaseRoute, key: Key) -> bool:
    """False only when no path whose first segments are ``key`` can match ``route``."""
    if not isinstance(route, Route) or ":path}" in route.path:
        return True
    template = _key(route.path)
    return len(template) == len(key) and all(
        t == k or "{" in t for t, k in zip(template, key, strict=True)
    )


def index(routes: Sequence[BaseRoute]) -> dict[Key, list[BaseRoute]]:
    """For every first-segments key a route names, the routes that could match it, in the
    router's order (so the first full match is the one Starlette would pick)."""
    keys = {_key(r.path) for r in routes if isinstance(r, Route)}
    return {key: [r for r in routes if _could_match(r, key)] for key in keys}


class IndexedRouter(Router):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._index: dict[Key, list[BaseRoute]] = {}
        self._indexed = -1  # how many routes the index was built from (routes are only added)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self._indexed != len(self.routes):
                self._index, self._indexed = index(self.routes), len(self.routes)
            for route in self._index.get(_key(get_route_path(scope)), ()):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self)
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        # No full match among the candidates: Starlette's own walk decides (405 for a
        # known path with another method, a redirect for a missing slash, or 404).
        await super().app(scope, receive, send)
