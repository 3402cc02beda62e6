"""Bad input always gets a 4xx in the error shape; nothing crashes into a 500."""

from __future__ import annotations

import gzip
import json
import secrets
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pydantic import BaseModel

from bloghub.api.app import all_endpoints
from tests.e2e.test_sessions import account, bearer, login
from tests.support import once_caught_up

GOOD = "s3cret-Pass!"
_HIDDEN_8 = "\u200b" * 5 + "a1!"
ARTICLE = "01a21c55-c7a4-73d1-a44c-16eb1e146e7d"


@pytest.fixture
async def auth(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> dict[str, str]:
    tokens = await login(client, await account(client, unique_email))
    return bearer(tokens["access_token"])


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
        # Eight code points, three a person sees: zero-width spaces do not make it long.
        (
            {"email": "a@example.com", "password": _HIDDEN_8, "confirm_password": _HIDDEN_8},
            "password",
        ),
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
            {"email": "x" * 65 + "@example.com", "password": GOOD, "confirm_password": GOOD},
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


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"email": "\xff\xfe"}', "it is not UTF-8 (byte 11); send JSON encoded as UTF-8"),
        ('{"email": "a@b.c"}'.encode("utf-16"), "it is not UTF-8 (byte 0)"),
        (b'{"email": ' + b"9" * 400 + b"}", "a number is too large (at char 10)"),
    ],
)
async def test_a_body_the_parser_misnames_is_explained_in_the_apis_words(
    client: httpx.AsyncClient, content: bytes, says: str
) -> None:
    json_type = {"content-type": "application/json"}
    v1 = await client.post("/v1/users", content=content, headers=json_type)
    assert v1.status_code == 400
    assert says in str(_shape(v1)["message"])
    realworld = await client.post("/api/users", content=content, headers=json_type)
    assert realworld.status_code == 422
    (message,) = realworld.json()["errors"]["body"]
    assert says in message


async def test_a_one_megabyte_body_is_refused_naming_the_limit(client: httpx.AsyncClient) -> None:
    big = b'{"email": "' + b"a" * (1024 * 1024) + b'@x.com"}'
    response = await client.post(
        "/v1/users", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert _shape(response) == {
        "code": "payload_too_large",
        "message": f"the request body is over the limit of {640 * 1024} bytes",
    }


def _escaped(value: str) -> str:
    """``value`` as a JSON string with every character escaped, as some encoders write it
    (Go escapes <, > and & so by default): a character past the BMP as two surrogates."""
    units = value.encode("utf-16-be")
    return (
        '"' + "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)) + '"'
    )


async def test_the_largest_article_is_taken_however_its_json_escapes_it(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The body limit leaves room for it (a 614 KB body was refused at 512 KiB)."""
    tags = ", ".join(_escaped(f"{i}" + "\U0001f600" * 31) for i in range(5))
    title = _escaped("\U0001f600" * 128)
    body = f'{{"title": {title}, "content": {_escaped("<" * 102_400)}, "tags": [{tags}]}}'
    headers = {**auth, "content-type": "application/json"}
    made = await client.post("/v1/articles", content=body.encode(), headers=headers)
    assert made.status_code == 201, made.text[:300]
    mine = await client.get(f"/v1/me/articles/{made.json()['article']['id']}", headers=auth)
    assert mine.json()["article"]["content"] == "<" * 102_400


@pytest.mark.parametrize(
    ("content", "headers", "message"),
    [
        (gzip.compress(b'{"email": "a@b.c"}'), {"content-encoding": "gzip"}, "uncompressed"),
        (b'{"email": ' + b"9" * 5000 + b"}", {}, "a number is too large"),
    ],
)
async def test_bodies_the_server_cannot_read_say_why(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], message: str
) -> None:
    response = await client.post(
        "/v1/users", content=content, headers={"content-type": "application/json", **headers}
    )
    assert response.status_code in (400, 415), response.text
    assert message in _shape(response)["message"]  # type: ignore[operator]


JSON_TYPE = ("content-type", "application/json")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([("content-type", "text/plain"), JSON_TYPE], "send one Content-Type"),
        ([JSON_TYPE, JSON_TYPE], "send one Content-Type"),
        ([JSON_TYPE, ("content-encoding", "identity, gzip")], "not Content-Encoding gzip"),
        (
            [JSON_TYPE, ("content-encoding", "identity"), ("content-encoding", "gzip")],
            "not Content-Encoding gzip",
        ),
    ],
)
async def test_a_body_described_twice_is_refused_not_guessed(
    client: httpx.AsyncClient, headers: list[tuple[str, str]], message: str
) -> None:
    """Which of two media types, or which coding, the body is in: the first header alone
    said application/json, or identity, of a body the second said otherwise of."""
    email = f"twice-{secrets.token_hex(4)}@example.com"
    body = json.dumps({"email": email, "password": GOOD, "confirm_password": GOOD})
    compressed = any(name == "content-encoding" for name, _ in headers)
    content = gzip.compress(body.encode()) if compressed else body.encode()
    refused = await client.post("/v1/users", content=content, headers=headers)
    assert refused.status_code == 415, refused.text
    assert message in _shape(refused)["message"]  # type: ignore[operator]
    answer = await client.post("/v1/auth/login", json={"email": email, "password": GOOD})
    assert answer.status_code == 401, answer.text  # no account was made


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
        {"email": "   ", "password": GOOD},
        {"email": "a@b.c", "password": " \u3000 "},
    ],
)
async def test_login_bad_input(client: httpx.AsyncClient, login: dict[str, object]) -> None:
    response = await client.post("/v1/auth/login", json=login)
    assert response.status_code == 422
    _shape(response)


async def test_blank_passwords_are_refused_as_input_not_counted_as_failed_logins(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    for _ in range(8):  # past the lockout's count of failures
        blank = await client.post("/v1/auth/login", json={"email": email, "password": "  "})
        assert blank.status_code == 422, blank.text
        assert "password" in blank.json()["error"]["fields"]
    assert (await login(client, email))["access_token"]


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
    assert _shape(response)["fields"] == {
        "Bloghub-After": "not a position token this service issued"
    }
    # /api names the header too, not the body (it was "body").
    conduit = await client.get("/api/user", headers={**auth, "bloghub-after": "%%%"})
    assert conduit.status_code == 422, conduit.text
    assert conduit.json() == {
        "errors": {"Bloghub-After": ["not a position token this service issued"]}
    }


@pytest.mark.parametrize(("path", "wrap"), [("/v1/users", False), ("/api/users", True)])
async def test_a_body_of_thousands_of_unknown_keys_gets_a_short_answer(
    client: httpx.AsyncClient, path: str, wrap: bool
) -> None:
    """A 422 names some of the fields that are wrong, not every one of a body built to
    make the answer many times larger than itself."""
    junk = {f"k{i}": i for i in range(5_000)}
    body = {"user": junk} if wrap else junk
    response = await client.post(path, json=body)
    assert response.status_code == 422, response.text[:300]
    shape = response.json()
    named = shape["errors"] if wrap else shape["error"]["fields"]
    assert 0 < len(named) <= 20, len(named)
    assert len(response.content) < 4_096, len(response.content)


async def test_a_nul_in_the_login_email_is_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/login", json={"email": "a\u0000b@example.com", "password": GOOD}
    )
    assert response.status_code == 422, response.text
    assert "email" in _shape(response)["fields"]  # type: ignore[operator]


SEPARATED = (
    "must not contain a line or paragraph separator or the Ogham space mark "
    "(U+2028, U+2029, U+1680)"
)


@pytest.mark.parametrize(
    ("nickname", "message"),
    [
        ("a?b", "must not contain /, ?, #, % or \\"),
        ("a#b", "must not contain /, ?, #, % or \\"),
        ("100%", "must not contain /, ?, #, % or \\"),
        ("a\\b", "must not contain /, ?, #, % or \\"),
        ("..", "must not be dots only"),
        # A page shows a run of spaces, of any width, as one: these would pass for others.
        ("mary  ann", "must not begin or end with a space or hold two in a row"),
        ("mary\u3000 ann", "must not begin or end with a space or hold two in a row"),
        # A line or paragraph separator, or the Ogham space mark, is no space out of place.
        ("\u5f20\u4e09\u2028\u674e\u56db", SEPARATED),
        ("\u5f20\u4e09\u2029\u674e\u56db", SEPARATED),
        ("mary\u1680ann", SEPARATED),
    ],
)
async def test_a_nickname_that_no_profile_address_can_hold_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str], nickname: str, message: str
) -> None:
    """A nickname is also the username of `/api/profiles/{username}`, which front ends
    write into the address as it is."""
    response = await client.patch("/v1/users/me", json={"nickname": nickname}, headers=auth)
    assert response.status_code == 422, response.text
    assert _shape(response)["fields"] == {"nickname": message}


NONCHARACTER = "must not contain a noncharacter (U+FDD0-U+FDEF, U+FFFE, U+FFFF and kin)"


@pytest.mark.parametrize("nickname", ["zq\ufdd0x", "zq\uffffx", "zq\U0010fffex"])
async def test_a_nickname_with_a_noncharacter_is_refused_on_both_apis(
    client: httpx.AsyncClient, auth: dict[str, str], nickname: str
) -> None:
    response = await client.patch("/v1/users/me", json={"nickname": nickname}, headers=auth)
    assert response.status_code == 422, response.text
    assert _shape(response)["fields"] == {"nickname": NONCHARACTER}
    conduit = {"authorization": auth["authorization"].replace("Bearer", "Token")}
    response = await client.put("/api/user", json={"user": {"username": nickname}}, headers=conduit)
    assert response.status_code == 422, response.text
    assert response.json() == {"errors": {"username": [NONCHARACTER]}}


async def test_texts_with_a_separator_or_noncharacter_are_taken_and_saved_back_as_they_are(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Such titles, descriptions and tags were always accepted: an editor sending the whole
    article back unchanged is not refused for them, and the tag lists show can filter."""
    conduit = {"authorization": auth["authorization"].replace("Bearer", "Token")}
    tag = "t\ufdd0x"
    article = {"title": "a\u2028b", "description": "d\ufdd0", "body": "b", "tagList": [tag]}
    made = await client.post("/api/articles", json={"article": article}, headers=conduit)
    assert made.status_code == 201, made.text
    shown = made.json()["article"]
    sent_back = {k: shown[k] for k in ("title", "description", "body", "tagList")}
    saved = await client.put(
        f"/api/articles/{shown['slug']}", json={"article": sent_back}, headers=conduit
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["article"]["title"] == "a\u2028b"
    listed = await client.get("/v1/articles", params={"tag": tag}, headers=auth)
    assert listed.status_code == 200, listed.text
    assert "a\u2028b" in [a["title"] for a in listed.json()["articles"]]


def _string_fields(model: type[BaseModel]) -> list[str]:
    return [
        name
        for name, prop in model.model_json_schema()["properties"].items()
        if "string" in {prop.get("type"), *(o.get("type") for o in prop.get("anyOf", []))}
    ]


def _text_inputs() -> list[tuple[str, str, str]]:
    return [
        (ep.method, ep.path.replace("{article_id}", ARTICLE), name)
        for ep in all_endpoints()
        if ep.body is not None
        for name in _string_fields(ep.body)
    ]


@pytest.mark.parametrize(("method", "path", "field"), _text_inputs())
async def test_every_text_field_refuses_control_characters(
    client: httpx.AsyncClient, auth: dict[str, str], method: str, path: str, field: str
) -> None:
    for bad in ("a\u0000b", "a\u001bb", "a\u0085b"):
        response = await client.request(method, path, json={field: bad}, headers=auth)
        assert response.status_code == 422, (bad, response.text)
        assert field in _shape(response)["fields"], (bad, response.text)  # type: ignore[operator]


@pytest.mark.parametrize(
    "query",
    ["tag=a%00b", "tag=a%1Bb", "author=a%00b", "cursor=a%00b", "limit=1%00"],
)
async def test_query_parameters_refuse_control_characters(
    client: httpx.AsyncClient, query: str
) -> None:
    response = await client.get(f"/v1/articles?{query}")
    assert response.status_code == 422, response.text
    assert query.split("=")[0] in _shape(response)["fields"]  # type: ignore[operator]


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/articles?author=urn:uuid:{ARTICLE}",
        f"/v1/articles?author=%7B{ARTICLE}%7D",
        f"/v1/search/articles?q=a&author=urn:uuid:{ARTICLE}",
    ],
)
async def test_an_id_in_a_query_is_taken_only_as_a_path_takes_it(
    client: httpx.AsyncClient, path: str
) -> None:
    """The same id in a path, so written, names nothing (404): not a filter either."""
    response = await client.get(path)
    assert response.status_code == 422, response.text
    assert "32 hex digits" in str(_shape(response)["fields"])
    canonical = await client.get(path.split("?")[0] + f"?author={ARTICLE.upper()}&q=a")
    assert canonical.status_code == 200, canonical.text


@pytest.mark.parametrize(
    "path",
    [
        "/v1/ranking/hot?limit=5&limit=50",
        "/v1/articles?limit=1&tag=a&limit=2",
        "/v1/search/articles?q=a&q=b",
    ],
)
async def test_a_query_parameter_given_twice_is_refused_not_one_value_taken(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 422, response.text
    twice = path.split("&")[-1].split("=")[0]
    assert _shape(response)["fields"] == {twice: "is given more than once"}
    # One the endpoint does not take is ignored, once or twice (a cache buster, say).
    ignored = await client.get(path.rsplit("&", 1)[0] + "&x=1&x=2")
    assert ignored.status_code == 200, ignored.text


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/users/me", {"GET", "HEAD", "PATCH", "DELETE"}),
        ("PATCH", "/v1/articles", {"GET", "HEAD", "POST"}),
        ("OPTIONS", "/v1/articles", {"GET", "HEAD", "POST"}),
        ("POST", f"/v1/articles/{ARTICLE}", {"GET", "HEAD", "PUT", "DELETE"}),
        ("GET", "/ops/session", {"POST"}),
    ],
)
async def test_a_405_names_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405, response.text
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
    assert _shape(response)["code"] == "method_not_allowed"


# U+0958 is one character as sent and two in NFC (a composition exclusion: it decomposes
# and never composes again); U+FB2C is three.
@pytest.mark.parametrize(("one", "stored_as"), [("\u0958", 2), ("\ufb2c", 3)])
async def test_lengths_are_counted_as_stored_after_nfc(
    client: httpx.AsyncClient, auth: dict[str, str], one: str, stored_as: int
) -> None:
    long_name = await client.post("/v1/collections", json={"name": one * 64}, headers=auth)
    assert long_name.status_code == 422, long_name.text
    assert "name" in _shape(long_name)["fields"]  # type: ignore[operator]
    fits = one * (64 // stored_as)
    made = await client.post("/v1/collections", json={"name": fits}, headers=auth)
    assert made.status_code == 201, made.text
    assert len(made.json()["collection"]["name"]) == 64 // stored_as * stored_as

    body = {"title": one * 128, "content": "body", "tags": []}
    long_title = await client.post("/v1/articles", json=body, headers=auth)
    assert long_title.status_code == 422, long_title.text
    assert "title" in _shape(long_title)["fields"]  # type: ignore[operator]
    conduit = await client.post(
        "/api/articles",
        json={"article": {**body, "description": "d", "body": "b"}},
        headers={"authorization": auth["authorization"].replace("Bearer", "Token")},
    )
    assert conduit.status_code == 422, conduit.text


@pytest.mark.parametrize("raw", ["caf%E9", "%FF", "%ED%A0%80"])
async def test_a_query_that_is_not_utf8_is_refused_naming_the_parameter(
    client: httpx.AsyncClient, raw: str
) -> None:
    """Not read as U+FFFD and answered with nothing found: the client learns why."""
    for path in (f"/v1/search/articles?q={raw}", f"/v1/articles?tag={raw}"):
        answer = await client.get(path)
        assert answer.status_code == 400, answer.text
        error = _shape(answer)
        assert error["fields"] == {path.split("?")[1].split("=")[0]: "is not UTF-8"}
    realworld = await client.get(f"/api/articles?tag={raw}")
    assert realworld.status_code == 422
    assert realworld.json() == {"errors": {"tag": ["is not UTF-8"]}}
    # A replacement character sent as such (its UTF-8 bytes) is just a character.
    fine = await client.get("/v1/articles?tag=%EF%BF%BD")
    assert fine.status_code in (200, 422), fine.text
    assert "is not UTF-8" not in fine.text


async def test_a_request_sent_without_its_body_is_told_what_body_it_takes(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    tokens = await login(client, await account(client, unique_email))
    bare = await client.delete("/v1/users/me", headers=bearer(tokens["access_token"]))
    assert bare.status_code == 415
    assert _shape(bare)["message"] == (
        "this request takes a JSON body (Content-Type: application/json) of password, code"
    )


@pytest.mark.parametrize("path", ["/v1/auth/login", "/api/users/login"])
async def test_a_login_reads_its_position_header_only_once_the_password_is_right(
    client: httpx.AsyncClient, unique_email: Callable[[], str], path: str
) -> None:
    """Read before the password, a forged header's 400 told a known email from an
    unknown one (401), and that probe was not counted as a failed login."""
    known = unique_email()
    body = {"email": known, "password": GOOD, "confirm_password": GOOD}
    assert (await client.post("/v1/users", json=body)).status_code == 201
    forged = {"bloghub-after": "%%%"}

    def sent(email: str, password: str) -> dict[str, object]:
        given: dict[str, object] = {"email": email, "password": password}
        return {"user": given} if path.startswith("/api") else given

    for email in (known, unique_email()):
        wrong = await client.post(path, json=sent(email, GOOD + "x"), headers=forged)
        assert wrong.status_code == 401, (email, wrong.text)
    right = await once_caught_up(lambda: client.post(path, json=sent(known, GOOD), headers=forged))
    assert right.status_code in (400, 422), right.text  # /api's shape is 422
    assert "Bloghub-After" in right.text
    # Refused for its header, a right password's attempt no longer counts: six of them
    # left five counted and the right password, sent plainly, at 429.
    for _ in range(6):
        again = await client.post(path, json=sent(known, GOOD), headers=forged)
        assert again.status_code in (400, 422), again.text
    plain = await client.post(path, json=sent(known, GOOD))
    assert plain.status_code == 200, plain.text


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
async def test_plain_http_to_the_live_socket_is_told_it_takes_a_websocket(
    client: httpx.AsyncClient, method: str
) -> None:
    """It was a bare "Not Found" for a path the README lists."""
    answer = await client.request(method, "/v1/live")
    assert answer.status_code == 426, answer.text
    assert answer.headers["upgrade"] == "websocket"
    if method != "HEAD":
        assert _shape(answer)["code"] == "upgrade_required"
        assert "WebSocket client" in str(_shape(answer)["message"])


async def test_a_write_that_takes_no_body_refuses_one_rather_than_ignore_it(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """A publish with a ``version`` expects a stale check it does not do, a like with a
    ``user_id`` someone else's: refused, as every write that takes a body refuses fields it
    does not know. Nothing, or an empty JSON object, is what these take."""
    made = await client.post("/v1/articles", json={"title": "t", "content": "c"}, headers=auth)
    assert made.status_code == 201, made.text
    publish = f"/v1/articles/{made.json()['article']['id']}/publish"
    as_json = {**auth, "content-type": "application/json"}
    for content, headers in (
        (b"not json at all", as_json),
        (b'{"version": "abc"}', as_json),
        (b'{"author_id": "01a21c55-c7a4-73d1-a44c-16eb1e146e7d"}', as_json),
        (b"<xml/>", {**auth, "content-type": "text/xml"}),
        (b"[]", as_json),
        (b"null", as_json),
        (b"{}" + b" " * 2000, as_json),
    ):
        refused = await client.post(publish, content=content, headers=headers)
        assert refused.status_code == 422, (content, refused.text)
        assert "takes no body" in str(_shape(refused)["message"])
    chunked = await client.post(
        publish, content=_chunks(b'{"status": ', b'"draft"}'), headers=as_json
    )
    assert chunked.status_code == 422, chunked.text
    # Over the body limit, chunked or not, it is 413 here as on every route.
    limit = 640 * 1024
    for sent in (b"x" * (limit + 1), _chunks(b"x" * limit, b"x")):
        too_large = await client.post(publish, content=sent, headers=as_json)
        assert too_large.status_code == 413, too_large.text[:300]
    keyed = {**as_json, "idempotency-key": f"pub-{made.json()['article']['id']}"}
    done = await once_caught_up(lambda: client.post(publish, headers=keyed))
    assert done.status_code == 200, done.text
    assert done.json()["article"]["status"] == "published"
    # Nothing and an empty object, however spaced, are the same request: replayed.
    for empty in (b"{}", b"{ }", b" {\n} "):
        again = await client.post(publish, content=empty, headers=keyed)
        assert again.status_code == 200, (empty, again.text)
        assert again.headers.get("idempotent-replay") == "true"
    out = await client.post("/v1/auth/logout", headers=auth)
    assert out.status_code == 204, out.text


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_every_write_that_takes_no_body_documents_its_422() -> None:
    from bloghub.api.http import takes_no_body
    from bloghub.api.openapi import statuses

    bodiless = [ep for ep in all_endpoints() if takes_no_body(ep)]
    assert {(ep.method, ep.path) for ep in bodiless} >= {
        ("POST", "/v1/articles/{article_id}/publish"),
        ("PUT", "/v1/articles/{article_id}/like"),
        ("PUT", "/v1/users/{user_id}/follow"),
        ("POST", "/v1/auth/logout"),
    }
    for ep in bodiless:
        assert 422 in statuses(ep), (ep.method, ep.path)


@pytest.mark.parametrize("key", [b"", b"a b", b"k" * 129, "ключ".encode(), b"a\tb"])
async def test_a_bad_idempotency_key_is_refused_and_records_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], key: bytes
) -> None:
    """A client whose keys come out empty or malformed is told, not left believing its
    retries are safe while each makes another write."""
    name = f"keyed {len(key)}"
    for _ in range(2):
        refused = await client.post(
            "/v1/collections",
            json={"name": name},
            headers=[
                *((k.encode(), v.encode()) for k, v in auth.items()),
                (b"idempotency-key", key),
            ],
        )
        assert refused.status_code == 422, (key, refused.text)
        assert "idempotency-key" in _shape(refused)["fields"]  # type: ignore[operator]
    mine = await client.get("/v1/me/collections", headers=auth)
    assert mine.status_code == 200, mine.text
    assert name not in [c["name"] for c in mine.json()["collections"]]


async def test_two_idempotency_keys_are_refused_and_record_nothing(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Two keys on one request: a retry sending either would be taken as the same request
    or as another, so neither is guessed."""
    name = f"two keys {secrets.token_hex(4)}"
    for second in (b"key-b", b"key-a"):
        refused = await client.post(
            "/v1/collections",
            json={"name": name},
            headers=[
                *((k.encode(), v.encode()) for k, v in auth.items()),
                (b"idempotency-key", b"key-a"),
                (b"idempotency-key", second),
            ],
        )
        assert refused.status_code == 422, refused.text
        assert _shape(refused)["fields"] == {"idempotency-key": "given more than once"}
    mine = await client.get("/v1/me/collections", headers=auth)
    assert name not in [c["name"] for c in mine.json()["collections"]]
