"""Whatever JSON arrives, at any route that takes a body, the answer is never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer
from tests.e2e.test_sessions import account, bearer, login

ARTICLE = "01a21c55-c7a4-73d1-a44c-16eb1e146e7d"

text = st.text(max_size=40) | st.sampled_from(
    ["", " ", "\u0000", "\ud7ff", "' OR 1=1 --", "<script>", "a" * 300, "1990-02-30", "+86138"]
)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | text
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
    max_leaves=12,
)


def field_bodies(fields: list[str]) -> st.SearchStrategy[Any]:
    """Objects with the route's own field names (so validation goes deep), or anything."""
    named = st.dictionaries(st.sampled_from(fields), json_values, max_size=len(fields))
    return st.one_of(named, json_values) if fields else json_values


@pytest.fixture
async def auth(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> dict[str, str]:
    tokens = await login(client, await account(client, unique_email))
    return bearer(tokens["access_token"])


def routes(live: LiveServer) -> list[tuple[str, str, list[str]]]:
    out = []
    for ep in live.app.state.endpoints:
        if ep.body is not None and not ep.path.startswith("/ops"):
            path = ep.path.replace("{article_id}", ARTICLE)
            out.append((ep.method, path, list(ep.body.model_fields)))
    return out


# Fixtures live for the whole test (one login), and each example is a real HTTP call.
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_not_a_server_error(answer: httpx.Response, *sent: object) -> None:
    assert answer.status_code < 500, (*sent, answer.text)
    assert set(answer.json()) == {"error"} or answer.status_code < 300


@settings(FUZZ, max_examples=400)
@given(data=st.data())
async def test_any_body_gets_an_answer_that_is_not_a_server_error(
    data: st.DataObject, live_api: LiveServer, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    method, path, fields = data.draw(st.sampled_from(routes(live_api)))
    body = data.draw(field_bodies(fields))
    try:
        content = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        content = b"{"  # not representable as JSON: send a broken document instead
    answer = await client.request(
        method, path, content=content, headers={**auth, "content-type": "application/json"}
    )
    assert_not_a_server_error(answer, method, path, content[:200])


def reads(live: LiveServer) -> list[tuple[str, list[str]]]:
    out = []
    for ep in live.app.state.endpoints:
        if ep.method == "GET" and not ep.path.startswith(("/ops", "/metrics", "/docs")):
            path = ep.path.replace("{article_id}", ARTICLE).replace("{user_id}", ARTICLE)
            out.append((path, list(ep.query)))
    return out


# Printable ASCII without surrounding blanks: what an HTTP client can send at all.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60
).map(str.strip) | st.sampled_from(["", "e30", "W10", "eyJ4IjoxfQ", "a" * 500, "users|0|1"])


@settings(FUZZ, max_examples=300)
@given(data=st.data())
async def test_any_query_or_position_gets_an_answer_that_is_not_a_server_error(
    data: st.DataObject, live_api: LiveServer, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    path, names = data.draw(st.sampled_from(reads(live_api)))
    params = data.draw(st.dictionaries(st.sampled_from(names or ["x"]), text, max_size=3))
    headers = dict(auth) if data.draw(st.booleans()) else {}
    if data.draw(st.booleans()):
        headers["bloghub-after"] = data.draw(header_text)
    answer = await client.get(path, params=params, headers=headers)
    assert_not_a_server_error(answer, path, params, headers)
