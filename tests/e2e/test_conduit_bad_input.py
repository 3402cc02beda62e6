"""Bad input on every RealWorld write: a 422 in RealWorld's shape, never a 500 (wrong
types, nulls, unicode oddities, malformed JSON)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conduit_client import Conduit, errors, register, unique_name, write

pytestmark = pytest.mark.usefixtures("live_api")

JSON = {"content-type": "application/json"}
# Bodies no write can take, whatever its envelope.
RAW = [b"", b"null", b"42", b'"text"', b"[]", b"{", b'{"a": "\xff"}', b'{"a": "\\ud800"}']


def shapes(envelope: str) -> list[object]:
    return [
        {envelope: None},
        {envelope: "x"},
        {envelope: [1]},
        {envelope: {"title": None, "body": None, "username": None, "email": None}},
        {envelope: {"body": {"nested": True}, "title": ["a"], "email": 1, "password": 2}},
        {envelope: {"body": "\u202e\u0000", "title": "\u200b", "username": "\u0007"}},
    ]


@pytest.fixture
async def jake(client: httpx.AsyncClient) -> Conduit:
    return await register(client)


async def writes(client: httpx.AsyncClient, jake: Conduit) -> list[tuple[str, str, str]]:
    """Every /api write that takes a body: its method, path and envelope."""
    slug = (await write(client, jake, unique_name("Target ")))["slug"]
    return [
        ("POST", "/api/users", "user"),
        ("POST", "/api/users/login", "user"),
        ("PUT", "/api/user", "user"),
        ("POST", "/api/articles", "article"),
        ("PUT", f"/api/articles/{slug}", "article"),
        ("POST", f"/api/articles/{slug}/comments", "comment"),
    ]


async def test_every_write_answers_bad_bodies_with_422(
    client: httpx.AsyncClient, jake: Conduit
) -> None:
    for method, path, envelope in await writes(client, jake):
        for raw in RAW:
            answer = await client.request(method, path, content=raw, headers={**JSON, **jake.auth})
            assert errors(answer, 422), (method, path, raw)
        for body in shapes(envelope):
            answer = await client.request(method, path, json=body, headers=jake.auth)
            assert errors(answer, 422), (method, path, body)


async def test_a_null_envelope_cant_be_blank_as_a_missing_one(
    client: httpx.AsyncClient, jake: Conduit
) -> None:
    """The README: "can't be blank" for a missing, null, empty or blank required field."""
    for method, path, envelope in await writes(client, jake):
        for body in ({}, {envelope: None}):
            answer = await client.request(method, path, json=body, headers=jake.auth)
            assert errors(answer, 422) == {envelope: ["can't be blank"]}, (path, body)
    # A null in a list, or a null list, is no blank field.
    for tags in ([None], ["a", None], None):
        article = {"title": "t", "description": "d", "body": "b", "tagList": tags}
        answer = await client.post("/api/articles", json={"article": article}, headers=jake.auth)
        assert errors(answer, 422) == {"tagList": ["is invalid"]}, tags


@pytest.mark.parametrize("name", ["tag", "author", "favorited"])
async def test_control_characters_in_filters_are_422(client: httpx.AsyncClient, name: str) -> None:
    answer = await client.get("/api/articles", params={name: "a\x00b"})
    assert errors(answer, 422) == {name: ["is invalid"]}


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/api/articles/a%00b", "article"),
        ("/api/articles/a%00b/comments", "article"),
        ("/api/profiles/a%00b", "profile"),
    ],
)
async def test_control_characters_in_names_name_nothing(
    client: httpx.AsyncClient, path: str, resource: str
) -> None:
    assert errors(await client.get(path), 404) == {resource: ["not found"]}


async def test_a_path_that_api_lacks_is_a_realworld_404(client: httpx.AsyncClient) -> None:
    assert errors(await client.get("/api/nothing/here"), 404) == {"path": ["not found"]}


@pytest.mark.parametrize("query", ["limit=1&limit=2", "tag=a&tag=b", "offset=0&offset=1"])
async def test_a_filter_given_twice_is_422(client: httpx.AsyncClient, query: str) -> None:
    name = query.split("=")[0]
    answer = await client.get(f"/api/articles?{query}")
    assert errors(answer, 422) == {name: ["is given more than once"]}
