"""Bad input always gets a 4xx in the error shape; nothing crashes into a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

GOOD = "s3cret-Pass!"


def _shape(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)
    error: dict[str, object] = body["error"]
    return error


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "email"),
        ({"email": "a@example.com", "password": GOOD}, "confirm_password"),
        ({"email": 42, "password": GOOD, "confirm_password": GOOD}, "email"),
        ({"email": ["a@example.com"], "password": GOOD, "confirm_password": GOOD}, "email"),
        ({"email": "not-an-email", "password": GOOD, "confirm_password": GOOD}, "email"),
        ({"email": "a@example.com", "password": "short", "confirm_password": "short"}, "password"),
        (
            {"email": "a@example.com", "password": GOOD, "confirm_password": GOOD + "x"},
            "confirm_password",
        ),
        ({"email": "a\u0000b@example.com", "password": GOOD, "confirm_password": GOOD}, "email"),
        (
            {"email": "x" * 300 + "@example.com", "password": GOOD, "confirm_password": GOOD},
            "email",
        ),
        (
            {"email": "a@example.com", "password": GOOD + "\u0000", "confirm_password": GOOD},
            "password",
        ),
        (
            {"email": "'; DROP TABLE users; --@x.com", "password": GOOD, "confirm_password": GOOD},
            "email",
        ),
        ({"email": "a@example.com", "password": True, "confirm_password": True}, "password"),
        (
            {"email": "a@example.com", "password": GOOD, "confirm_password": GOOD, "admin": True},
            "admin",
        ),
    ],
)
async def test_signup_fields_are_checked(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await client.post("/v1/users", json=body)
    assert response.status_code == 422, response.text
    error = _shape(response)
    assert field in error["fields"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("content", "ctype", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b'"just a string"', "application/json", 422),
        (b'{"email": "\\ud800@x.com"}', "application/json", 400),
        (b"\xff\xfe\x00garbage", "application/json", 400),
        (b"email=a@b.c", "application/x-www-form-urlencoded", 415),
        (b'{"email": "a@b.c"}', "text/plain", 415),
    ],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient, content: bytes, ctype: str, status: int
) -> None:
    response = await client.post("/v1/users", content=content, headers={"content-type": ctype})
    assert response.status_code == status, response.text
    _shape(response)


async def test_a_one_megabyte_body_is_refused(client: httpx.AsyncClient) -> None:
    big = b'{"email": "' + b"a" * (1024 * 1024) + b'@x.com"}'
    response = await client.post(
        "/v1/users", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert _shape(response)["code"] == "payload_too_large"


async def test_a_body_without_content_length_is_still_limited(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"a" * 32 * 1024

    response = await client.post(
        "/v1/users", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "login",
    [
        {},
        {"email": "", "password": ""},
        {"email": None, "password": GOOD},
        {"email": "a@b.c", "password": "x" * 10_000},
    ],
)
async def test_login_bad_input(client: httpx.AsyncClient, login: dict[str, object]) -> None:
    response = await client.post("/v1/auth/login", json=login)
    assert response.status_code == 422
    _shape(response)


async def test_unicode_email_and_password_work(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = "用户-" + unique_email().split("@")[0] + "@例子.中国"
    body = {"email": email, "password": "密码-Secret1", "confirm_password": "密码-Secret1"}
    created = await client.post("/v1/users", json=body)
    assert created.status_code == 201, created.text
    login = await client.post("/v1/auth/login", json={"email": email, "password": "密码-Secret1"})
    assert login.status_code == 200, login.text


async def test_unknown_routes_and_methods_use_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert _shape(missing)["code"] == "not_found"
    wrong = await client.delete("/v1/users")
    assert wrong.status_code == 405
    _shape(wrong)


async def test_bad_position_header_is_a_400(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    body = {"email": email, "password": GOOD, "confirm_password": GOOD}
    assert (await client.post("/v1/users", json=body)).status_code == 201
    login = await client.post("/v1/auth/login", json={"email": email, "password": GOOD})
    auth = {"authorization": f"Bearer {login.json()['access_token']}"}
    response = await client.get("/v1/users/me", headers={**auth, "bloghub-after": "%%%"})
    assert response.status_code == 400
    assert "Bloghub-After" in str(_shape(response)["message"])
