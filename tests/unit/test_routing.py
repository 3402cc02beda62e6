"""The indexed router picks the route Starlette's own walk would pick."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from starlette.routing import BaseRoute, Match, Route

from bloghub.api.app import all_endpoints, routes
from bloghub.api.routing import _key, index

ROUTES: list[BaseRoute] = list(routes(all_endpoints()))
SEGMENTS = st.sampled_from(
    ["v1", "api", "articles", "users", "me", "tags", "auth", "ops", "", "x", "healthz"]
)


def first_full(routes: list[BaseRoute], path: str, method: str) -> BaseRoute | None:
    scope = {"type": "http", "path": path, "method": method, "root_path": ""}
    for route in routes:
        if route.matches(scope)[0] is Match.FULL:
            return route
    return None


@given(
    parts=st.lists(st.one_of(SEGMENTS, st.uuids().map(str)), min_size=1, max_size=5),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
)
def test_the_candidates_hold_the_first_full_match(parts: list[str], method: str) -> None:
    path = "/" + "/".join(parts)
    expected = first_full(ROUTES, path, method)
    candidates = index(ROUTES).get(_key(method, path))
    if expected is not None:
        assert candidates is not None, path
        assert first_full(candidates, path, method) is expected


def test_every_route_is_found_by_its_own_path() -> None:
    table = index(ROUTES)
    for route in ROUTES:
        assert isinstance(route, Route)
        path = route.path.replace("{", "").replace("}", "")
        method = sorted(route.methods or {"GET"})[0]
        assert first_full(table[_key(method, path)], path, method) is first_full(
            ROUTES, path, method
        )
