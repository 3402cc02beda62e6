"""Paging input beyond what the stores hold is refused at the door, naming the parameter,
in the API's error shape: a RealWorld offset past a bigint, and a /v1 cursor whose instant
is no instant in UTC. Neither reaches the store, so neither is logged as refused there."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from bloghub.api.conduit.articles import MAX_OFFSET
from bloghub.api.v1.schemas import CURSOR_REFUSED
from tests.e2e.conduit_client import errors, register
from tests.e2e.test_bad_input import _shape
from tests.e2e.test_sessions import account, bearer, login

pytestmark = pytest.mark.usefixtures("live_api")
NOBODY = "01a21c55-c7a4-73d1-a44c-16eb1e146e7d"


def cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def store_refusals(lines: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [line for line in lines if "store_rejected" in str(line["event"])]


@pytest.mark.parametrize("path", ["/api/articles", "/api/articles/feed"])
async def test_an_offset_past_what_the_store_takes_is_a_422_naming_it(
    client: httpx.AsyncClient, path: str
) -> None:
    jake = await register(client)
    with capture_logs() as lines:
        for offset in (str(MAX_OFFSET + 1), "99999999999999999999"):
            found = errors(
                await client.get(path, params={"offset": offset}, headers=jake.auth), 422
            )
            assert found == {"offset": [f"must be less than or equal to {MAX_OFFSET}"]}
        last = await client.get(path, params={"offset": str(MAX_OFFSET)}, headers=jake.auth)
    assert last.status_code == 200, last.text
    assert last.json()["articles"] == []
    assert not store_refusals(lines)


@pytest.mark.parametrize(
    "at",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-14:00", "2026-01-01T00:00:00"],
)
async def test_a_cursor_at_no_instant_in_utc_is_a_malformed_cursor(
    client: httpx.AsyncClient, unique_email: Callable[[], str], at: str
) -> None:
    tokens = await login(client, await account(client, unique_email))
    auth, me = bearer(tokens["access_token"]), tokens["user"]["id"]
    made = await client.post("/v1/collections", json={"name": "Later"}, headers=auth)
    assert made.status_code == 201, made.text
    lists = [
        "/v1/articles",
        "/v1/feed",
        f"/v1/users/{me}/followers",
        f"/v1/users/{me}/followees",
        f"/v1/collections/{made.json()['collection']['id']}/articles",
    ]
    with capture_logs() as lines:
        for path in lists:
            answer = await client.get(path, params={"cursor": cursor(at, NOBODY)}, headers=auth)
            assert answer.status_code == 404, (path, answer.text)
            assert _shape(answer)["code"] == "not_found", path
    assert not store_refusals(lines)


@pytest.mark.parametrize("limit", ["1_0", "+5", " 7 ", "1.0", "\u0663", "0x10", ""])
@pytest.mark.parametrize(
    "path",
    [
        "/v1/articles",
        "/v1/ranking/hot",
        "/v1/search/articles?q=words",
        "/v1/search/users?q=words",
        f"/v1/articles/{NOBODY}/comments",
    ],
)
async def test_a_limit_not_written_in_digits_is_a_422_naming_it(
    client: httpx.AsyncClient, path: str, limit: str
) -> None:
    """What the schema calls an integer is one written in digits, not what Python's int()
    would also take (underscores, a sign, spaces, a decimal point, other scripts' digits)."""
    url = httpx.URL(path)
    answer = await client.get(url.path, params={**dict(url.params), "limit": limit})
    assert answer.status_code == 422, (limit, answer.text)
    assert "limit" in _shape(answer)["fields"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("limit", "told"),
    [
        ("-1", "greater than or equal to 1"),
        ("-" + "9" * 5000, "greater than or equal to 1"),
        ("9" * 5000, "less than or equal to"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/articles", "/v1/search/articles?q=x", "/v1/ranking/hot"])
async def test_a_limit_out_of_bounds_is_told_the_bound(
    client: httpx.AsyncClient, path: str, limit: str, told: str
) -> None:
    """-1 was told to be "a whole number written in digits", which it is; then "must not be
    negative", which sent the user to 0, refused in turn. Thousands of digits were told
    Python's own limit on converting them."""
    url = httpx.URL(path)
    answer = await client.get(url.path, params={**dict(url.params), "limit": limit})
    assert answer.status_code == 422, answer.text[:300]
    fields = _shape(answer)["fields"]
    assert list(fields) == ["limit"], fields  # type: ignore[call-overload]
    assert told in fields["limit"], fields  # type: ignore[index]


@pytest.mark.parametrize("given", ["abc", "!!", "1_", "a b"])
async def test_a_cursor_of_no_form_a_page_hands_out_is_told_so_not_shown_a_pattern(
    client: httpx.AsyncClient, unique_email: Callable[[], str], given: str
) -> None:
    tokens = await login(client, await account(client, unique_email))
    auth, me = bearer(tokens["access_token"]), tokens["user"]["id"]
    article = await client.post(
        "/v1/articles", json={"title": "Paged", "content": "x", "tags": []}, headers=auth
    )
    assert article.status_code == 201, article.text
    article_id = article.json()["article"]["id"]
    published = await client.post(f"/v1/articles/{article_id}/publish", headers=auth)
    assert published.status_code == 200, published.text
    thread = f"/v1/articles/{article_id}/comments"
    named = {
        "/v1/notifications": "cursor",
        "/v1/feed": "cursor",
        "/v1/articles": "cursor",
        f"/v1/users/{me}/followers": "cursor",
        thread: "before",
    }
    for path, name in named.items():
        answer = await client.get(path, params={name: given}, headers=auth)
        if answer.status_code == 404:  # of the right form, naming no page
            assert given.isalnum() or "_" in given, (path, answer.text)
            continue
        assert answer.status_code == 422, (path, answer.text)
        told = _shape(answer)["fields"]
        assert told == {name: CURSOR_REFUSED}, (path, told)


async def test_a_cursor_another_list_handed_out_is_no_page_of_the_notifications(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """The notifications took cursors of up to 64 characters; one the articles list hands
    out is longer, and was told pydantic's length, not to start again without one."""
    tokens = await login(client, await account(client, unique_email))
    auth = bearer(tokens["access_token"])
    for title in ("One", "Two"):
        made = await client.post(
            "/v1/articles", json={"title": title, "content": "x", "tags": []}, headers=auth
        )
        assert made.status_code == 201, made.text
        article_id = made.json()["article"]["id"]
        published = await client.post(f"/v1/articles/{article_id}/publish", headers=auth)
        assert published.status_code == 200, published.text
    listed = await client.get(
        "/v1/articles", params={"author": tokens["user"]["id"], "limit": 1}, headers=auth
    )
    assert listed.status_code == 200, listed.text
    foreign = listed.json()["next_cursor"]
    assert foreign
    assert len(foreign) > 64
    answer = await client.get("/v1/notifications", params={"cursor": foreign}, headers=auth)
    assert answer.status_code == 404, answer.text
    assert _shape(answer)["message"] == "no page at that cursor; start again without one"
