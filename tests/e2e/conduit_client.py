"""What the RealWorld (/api) tests share: a user signed up as a Conduit client does it,
and the checks every answer of the spec gets."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

PASSWORD = "s3cret-Pass!"
# ISO 8601 with milliseconds and Z, as every RealWorld timestamp.
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ARTICLE_FIELDS = {
    "slug",
    "title",
    "description",
    "body",
    "tagList",
    "createdAt",
    "updatedAt",
    "favorited",
    "favoritesCount",
    "author",
}
PROFILE_FIELDS = {"username", "bio", "image", "following"}


@dataclass(frozen=True, slots=True)
class Conduit:
    username: str
    email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Token {self.token}"}


def unique_name(stem: str = "jake") -> str:
    return f"{stem}{secrets.token_hex(5)}"


async def register(client: httpx.AsyncClient, username: str | None = None) -> Conduit:
    name = username or unique_name()
    email = f"{unique_name('user')}@example.com"
    answer = await client.post(
        "/api/users", json={"user": {"username": name, "email": email, "password": PASSWORD}}
    )
    assert answer.status_code == 201, answer.text
    user = answer.json()["user"]
    assert user == {
        "email": email,
        "token": user["token"],
        "username": name,
        "bio": None,
        "image": None,
    }
    return Conduit(name, email, user["token"])


async def write(
    client: httpx.AsyncClient, who: Conduit, title: str = "How to train your dragon", **more: Any
) -> dict[str, Any]:
    return (await write_at(client, who, title, **more))[0]


async def write_at(
    client: httpx.AsyncClient, who: Conduit, title: str = "How to train your dragon", **more: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """A new article, and the header with which another reader waits for it (the writer's
    own reads wait for it without one)."""
    article = {"title": title, "description": "Ever wonder how?", "body": "You have to believe"}
    answer = await client.post(
        "/api/articles", json={"article": {**article, **more}}, headers=who.auth
    )
    assert answer.status_code == 201, answer.text
    out: dict[str, Any] = answer.json()["article"]
    assert_article(out)
    return out, {"bloghub-after": answer.headers["bloghub-position"]}


def assert_article(article: dict[str, Any], *, listed: bool = False) -> None:
    """Every field the spec requires, of its type; a list item has no body."""
    expected = ARTICLE_FIELDS - {"body"} if listed else ARTICLE_FIELDS
    assert set(article) == expected, article
    assert TIMESTAMP.match(article["createdAt"])
    assert TIMESTAMP.match(article["updatedAt"])
    assert isinstance(article["favorited"], bool)
    assert isinstance(article["favoritesCount"], int)
    assert set(article["author"]) == PROFILE_FIELDS


def errors(answer: httpx.Response, status: int) -> dict[str, list[str]]:
    """The RealWorld error body of ``answer``, which must have ``status``."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"errors"}, body
    found: dict[str, list[str]] = body["errors"]
    assert found
    assert all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in found.values())
    return found
