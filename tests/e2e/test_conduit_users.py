"""RealWorld users at /api: registration, login, the current user and its changes, with
the spec's statuses and error bodies."""

from __future__ import annotations

import asyncio
import gzip
import time
import unicodedata
from collections.abc import Callable

import httpx
import jwt
import orjson
import pytest

from bloghub.api.v1.schemas import FILLER, SEPARATOR, SHOWN_FOR_ERASED, SPACED
from bloghub.commands.context import Caller
from bloghub.commands.users import RegisterUser, register_user
from tests.conftest import LiveServer
from tests.e2e.conduit_client import PASSWORD, Conduit, errors, register, unique_name
from tests.e2e.test_accounts import signup_body

pytestmark = pytest.mark.usefixtures("live_api")


def new_user(name: str, email: str | None = None, password: str = PASSWORD) -> dict[str, object]:
    return {
        "user": {"username": name, "email": email or f"{name}@example.com", "password": password}
    }


async def test_registration_answers_the_user_with_a_token_that_works_as_token_or_bearer(
    client: httpx.AsyncClient,
) -> None:
    jake = await register(client)
    for scheme in ("Token", "Bearer"):
        me = await client.get("/api/user", headers={"authorization": f"{scheme} {jake.token}"})
        assert me.status_code == 200, me.text
        assert me.json()["user"]["email"] == jake.email
        assert me.json()["user"]["token"] == jake.token


async def test_a_taken_email_or_username_is_409_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    jake = await register(client)
    same_email = await client.post("/api/users", json=new_user(unique_name(), jake.email))
    assert errors(same_email, 409) == {"email": ["has already been taken"]}
    # Usernames are one regardless of case.
    other_email = f"{unique_name()}@example.com"
    same_name = await client.post("/api/users", json=new_user(jake.username.upper(), other_email))
    assert errors(same_name, 409) == {"username": ["has already been taken"]}
    # The refused registration took nothing: its email is still free.
    free = await client.post(
        "/api/users", json=new_user(unique_name(), f"{jake.username}.x@example.com")
    )
    assert free.status_code == 201, free.text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"user": {"username": "", "email": "a@example.com", "password": PASSWORD}}, "username"),
        ({"user": {"username": "ann", "email": "   ", "password": PASSWORD}}, "email"),
        ({"user": {"username": "ann", "email": "a@example.com"}}, "password"),
        ({"user": {}}, "username"),
        ({}, "user"),
    ],
)
async def test_blank_or_missing_fields_are_422_cant_be_blank(
    client: httpx.AsyncClient, body: dict[str, object], expected: str
) -> None:
    found = errors(await client.post("/api/users", json=body), 422)
    assert found[expected] == ["can't be blank"]


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"email": "  ", "password": PASSWORD}, "email"),
        ({"email": "a@b.c", "password": "  "}, "password"),
    ],
)
async def test_a_blank_login_field_is_422_cant_be_blank(
    client: httpx.AsyncClient, user: dict[str, object], expected: str
) -> None:
    found = errors(await client.post("/api/users/login", json={"user": user}), 422)
    assert found == {expected: ["can't be blank"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": {"username": 7, "email": "a@example.com", "password": PASSWORD}}, "username"),
        (
            {"user": {"username": "x" * 65, "email": "a@example.com", "password": PASSWORD}},
            "username",
        ),
        (
            {"user": {"username": "ann\u0000", "email": "a@example.com", "password": PASSWORD}},
            "username",
        ),
        ({"user": {"username": "ann", "email": "not-an-address", "password": PASSWORD}}, "email"),
        ({"user": {"username": "ann", "email": "a@example.com", "password": "short"}}, "password"),
        ({"user": ["ann"]}, "user"),
    ],
)
async def test_wrong_types_too_long_or_malformed_fields_are_422(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    assert field in errors(await client.post("/api/users", json=body), 422)


async def test_a_username_too_long_is_said_so(client: httpx.AsyncClient) -> None:
    body = {"user": {"username": "x" * 65, "email": "a@example.com", "password": PASSWORD}}
    found = errors(await client.post("/api/users", json=body), 422)
    assert found["username"] == ["is too long (maximum is 64 characters)"]


async def test_bodies_that_are_not_json_objects_or_too_large_are_422(
    client: httpx.AsyncClient,
) -> None:
    headers = {"content-type": "application/json"}
    assert "body" in errors(await client.post("/api/users", content=b"{", headers=headers), 422)
    assert "body" in errors(await client.post("/api/users", content=b"[1]", headers=headers), 422)
    huge = b'{"user": {"username": "' + b"x" * 2_000_000 + b'"}}'
    assert errors(await client.post("/api/users", content=huge, headers=headers), 422) == {
        "body": [f"is over the limit of {640 * 1024} bytes"]
    }
    gzipped = gzip.compress(b'{"user": {}}')
    compressed = {**headers, "content-encoding": "gzip"}
    assert errors(await client.post("/api/users", content=gzipped, headers=compressed), 422) == {
        "body": ["must be sent uncompressed, not as gzip"]
    }


async def test_a_body_with_two_content_types_is_refused(client: httpx.AsyncClient) -> None:
    body = b'{"user": {"username": "twice", "email": "twice@example.com", "password": "x"}}'
    two = [("content-type", "text/plain"), ("content-type", "application/json")]
    assert errors(await client.post("/api/users", content=body, headers=two), 422) == {
        "body": ["must be sent with one Content-Type, not several"]
    }


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_a_body_not_sent_as_json_is_refused_and_records_nothing(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    """What a cross-site page can make a visitor's browser send without asking first: it
    signs no one up, and its wrong passwords do not lock the owner out."""
    headers = {} if content_type is None else {"content-type": content_type}
    ctype = content_type.split(";")[0] if content_type else None
    said = f"not as {ctype}" if ctype else "with Content-Type: application/json"
    name = unique_name()
    user = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    posted = await client.post("/api/users", content=orjson.dumps({"user": user}), headers=headers)
    assert errors(posted, 422) == {"body": [f"must be sent as JSON, {said}"]}
    jake = await register(client)
    wrong = {"user": {"email": jake.email, "password": "not-the-password"}}
    for _ in range(6):
        login = await client.post("/api/users/login", content=orjson.dumps(wrong), headers=headers)
        assert "body" in errors(login, 422)
    right = {"user": {"email": jake.email, "password": PASSWORD}}
    assert (await client.post("/api/users/login", json=right)).status_code == 200
    assert (await client.post("/api/users", json={"user": user})).status_code == 201


async def test_a_unicode_username_is_kept_as_written(client: httpx.AsyncClient) -> None:
    name = unique_name("Zoë-作者")
    user = await register(client, name)
    shown = await client.get(f"/api/profiles/{name}", headers=user.auth)
    assert shown.status_code == 200, shown.text
    assert shown.json()["profile"]["username"] == user.username


async def test_login_answers_the_user_and_refuses_a_wrong_password_with_401(
    client: httpx.AsyncClient,
) -> None:
    jake = await register(client)
    good = await client.post(
        "/api/users/login", json={"user": {"email": jake.email, "password": PASSWORD}}
    )
    assert good.status_code == 200, good.text
    assert good.json()["user"]["username"] == jake.username
    bad = await client.post(
        "/api/users/login", json={"user": {"email": jake.email, "password": "Wrong-pass-1"}}
    )
    assert errors(bad, 401) == {"credentials": ["invalid"]}
    blank = await client.post("/api/users/login", json={"user": {"email": "", "password": ""}})
    assert errors(blank, 422) == {"email": ["can't be blank"], "password": ["can't be blank"]}


async def test_the_current_user_needs_a_valid_token(client: httpx.AsyncClient) -> None:
    assert errors(await client.get("/api/user"), 401) == {"token": ["is missing"]}
    bad = await client.get("/api/user", headers={"authorization": "Token not.a.jwt"})
    assert errors(bad, 401) == {"token": ["is invalid"]}
    update = await client.put("/api/user", json={"user": {"bio": "x"}})
    assert errors(update, 401) == {"token": ["is missing"]}


async def test_update_sets_bio_image_and_username_and_the_next_read_shows_them(
    client: httpx.AsyncClient,
) -> None:
    jake = await register(client)
    renamed = unique_name("jacob")
    changes = {
        "bio": "I like to skateboard",
        "image": "https://i.example/j.jpg",
        "username": renamed,
    }
    answer = await client.put("/api/user", json={"user": changes}, headers=jake.auth)
    assert answer.status_code == 200, answer.text
    user = answer.json()["user"]
    assert (user["bio"], user["image"], user["username"]) == tuple(changes.values())
    me = (await client.get("/api/user", headers=jake.auth)).json()["user"]
    assert (me["bio"], me["image"], me["username"]) == tuple(changes.values())
    # The old username no longer names anyone, and is free for another account.
    assert errors(await client.get(f"/api/profiles/{jake.username}"), 404) == {
        "profile": ["not found"]
    }
    await register(client, jake.username)
    cleared = await client.put("/api/user", json={"user": {"image": None}}, headers=jake.auth)
    assert cleared.json()["user"]["image"] is None


async def test_update_refuses_a_taken_username_blank_fields_and_unsafe_images(
    client: httpx.AsyncClient,
) -> None:
    jake, ann = await register(client), await register(client)
    taken = await client.put(
        "/api/user", json={"user": {"username": ann.username}}, headers=jake.auth
    )
    # The spec gives an update no 409: a taken name is its 422.
    assert errors(taken, 422) == {"username": ["has already been taken"]}
    nulled = await client.put("/api/user", json={"user": {"username": None}}, headers=jake.auth)
    assert errors(nulled, 422) == {"username": ["can't be blank"]}
    script = await client.put(
        "/api/user", json={"user": {"image": "javascript:alert(1)"}}, headers=jake.auth
    )
    assert errors(script, 422) == {"image": ["must be an http or https URL"]}
    nothing = await client.put("/api/user", json={"user": {}}, headers=jake.auth)
    assert "user" in errors(nothing, 422)


async def test_an_image_no_browser_can_load_is_refused(client: httpx.AsyncClient) -> None:
    jake = await register(client)
    unusable = [
        "http://:80/",  # no host
        "http://a b/c",
        "https://ex\u200bample.com/a",  # an invisible character in the host
        "https://x.example:99999/a",  # no such port
        " https://x.example/a",
        "https://user:pass@x.example/a.png",  # credentials: no browser loads it
        "https://bank.example@x.example/a.png",  # names another site than it seems
    ]
    for image in unusable:
        sent = await client.put("/api/user", json={"user": {"image": image}}, headers=jake.auth)
        assert "image" in errors(sent, 422), image
    kept = await client.put(
        "/api/user", json={"user": {"image": "https://x.example:8443/a.png"}}, headers=jake.auth
    )
    assert kept.json()["user"]["image"] == "https://x.example:8443/a.png"


async def test_an_account_without_a_username_logs_in_with_strings_the_spec_requires(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """Signed up through /v1 without a nickname: RealWorld's user still has a username
    and an email, both strings (the id stands in for the name, as on its profile)."""
    email = unique_email()
    made = await client.post("/v1/users", json=signup_body(email))
    assert made.status_code == 201, made.text
    login = {"user": {"email": email, "password": PASSWORD}}
    user = (await client.post("/api/users/login", json=login)).json()["user"]
    assert (user["email"], user["username"]) == (email, made.json()["user"]["id"])
    auth = {"authorization": f"Token {user['token']}"}
    shown = await client.get("/api/user", headers=auth)
    assert shown.json()["user"]["username"] == user["username"]
    # Its settings form sends that id back as the username: no rename (it was 422, "must
    # not be an account id").
    form = {"email": email, "username": user["username"], "bio": "Hi", "image": ""}
    saved = await client.put("/api/user", json={"user": form}, headers=auth)
    assert saved.status_code == 200, saved.text
    assert (saved.json()["user"]["username"], saved.json()["user"]["bio"]) == (
        user["username"],
        "Hi",
    )


async def test_a_new_password_is_the_one_login_takes(client: httpx.AsyncClient) -> None:
    jake = await register(client)
    new = "An0ther-Secret!"
    changed = await client.put("/api/user", json={"user": {"password": new}}, headers=jake.auth)
    assert changed.status_code == 200, changed.text
    assert (await client.get("/api/user", headers=jake.auth)).status_code == 200, "kept session"
    old = await client.post(
        "/api/users/login", json={"user": {"email": jake.email, "password": PASSWORD}}
    )
    assert old.status_code == 401
    fresh = await client.post(
        "/api/users/login", json={"user": {"email": jake.email, "password": new}}
    )
    assert fresh.status_code == 200, fresh.text


def aged(live_api: LiveServer, user: Conduit, seconds: int) -> dict[str, str]:
    """An access token of ``user``'s session as if its sign-in were ``seconds`` ago (what
    refreshing the session for that long would give)."""
    claims = jwt.decode(user.token, options={"verify_signature": False})
    pair = live_api.container.commands.tokens.issue(
        claims["sub"],
        "bloghub-tests/1",
        session_id=claims["sid"],
        started_at=int(time.time()) - seconds,
    )
    return {"authorization": f"Token {pair.access}"}


async def test_a_realworld_token_outlives_a_v1_access_token(
    client: httpx.AsyncClient, live_api: LiveServer
) -> None:
    """RealWorld clients cannot refresh: the token `/api` signs in with lasts
    `conduit_token_ttl_s`, not the half hour of a `/v1` access token, so a Conduit front end
    does not sign its user out every half hour."""
    settings = live_api.container.settings
    jake = await register(client)
    login = {"user": {"email": jake.email, "password": PASSWORD}}
    logged = await client.post("/api/users/login", json=login)
    v1 = await client.post("/v1/auth/login", json={"email": jake.email, "password": PASSWORD})
    for token in (jake.token, logged.json()["user"]["token"]):
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == settings.conduit_token_ttl_s
    v1_claims = jwt.decode(v1.json()["access_token"], options={"verify_signature": False})
    assert v1_claims["exp"] - v1_claims["iat"] == settings.access_token_ttl_s
    assert (await client.get("/api/user", headers=jake.auth)).status_code == 200


async def test_a_password_is_changed_only_soon_after_signing_in(
    client: httpx.AsyncClient, live_api: LiveServer
) -> None:
    """RealWorld sends no current password: a token of a session signed in long ago (one
    that leaked, say) cannot set a new one and lock the owner out."""
    jake = await register(client)
    window = live_api.container.settings.password_change_window_s
    stale = aged(live_api, jake, window + 60)
    refused = await client.put(
        "/api/user", json={"user": {"password": "Th1ef-owns-it!"}}, headers=stale
    )
    assert "sign in again" in errors(refused, 422)["password"][0]
    # Nothing changed: the old password still signs in, the session was not ended.
    login = {"user": {"email": jake.email, "password": PASSWORD}}
    assert (await client.post("/api/users/login", json=login)).status_code == 200
    assert (await client.get("/api/user", headers=jake.auth)).status_code == 200
    # The same old session may still change everything else.
    bio = await client.put("/api/user", json={"user": {"bio": "still mine"}}, headers=stale)
    assert bio.status_code == 200, bio.text
    # And a session signed in moments ago may change the password.
    recent = aged(live_api, jake, window - 60)
    changed = await client.put(
        "/api/user", json={"user": {"password": "An0ther-Secret!"}}, headers=recent
    )
    assert changed.status_code == 200, changed.text


async def test_a_taken_username_refuses_the_password_sent_with_it(
    client: httpx.AsyncClient,
) -> None:
    """One change, one answer: a 422 records nothing, so the password stays and no session
    ends."""
    jake, ann = await register(client), await register(client)
    login = {"user": {"email": jake.email, "password": PASSWORD}}
    other = await client.post("/api/users/login", json=login)
    assert other.status_code == 200, other.text
    other_auth = {"authorization": f"Token {other.json()['user']['token']}"}
    refused = await client.put(
        "/api/user",
        json={"user": {"password": "An0ther-Secret!", "username": ann.username}},
        headers=jake.auth,
    )
    assert errors(refused, 422) == {"username": ["has already been taken"]}
    assert (await client.post("/api/users/login", json=login)).status_code == 200
    new = {"user": {"email": jake.email, "password": "An0ther-Secret!"}}
    assert (await client.post("/api/users/login", json=new)).status_code == 401
    assert (await client.get("/api/user", headers=other_auth)).status_code == 200


async def test_usernames_that_look_alike_are_one_username(client: httpx.AsyncClient) -> None:
    """A composed and a decomposed accent, full-width letters, spaces at the ends and
    blank braille cells do not make another account that looks like this one."""
    stem = unique_name("josé")
    jose = await register(client, stem)
    lookalikes = [
        unicodedata.normalize("NFD", stem),
        f" {stem} ",
        "".join(chr(ord(c) + 0xFEE0) if "a" <= c <= "z" else c for c in stem),
    ]
    for name in lookalikes:
        email = f"{unique_name()}@example.com"
        taken = await client.post("/api/users", json=new_user(name, email))
        assert errors(taken, 409) == {"username": ["has already been taken"]}, name
    # Kept in its one composed form, without the spaces.
    spaced = unique_name("ann")
    kept = await client.post(
        "/api/users", json=new_user(f"  {spaced}\u3000", f"{spaced}@example.com")
    )
    assert kept.status_code == 201, kept.text
    assert kept.json()["user"]["username"] == spaced
    found = await client.get(f"/api/profiles/{unicodedata.normalize('NFD', stem)}")
    assert found.json()["profile"]["username"] == jose.username
    # A blank braille cell shows as a space: at an end, or beside a space, it is refused
    # as such a space is; between words it is a space, here the erased author's name.
    for name, said in (
        (f"{stem}\u2800", SPACED),
        (f"mary\u00a0\u2800ann{stem}", SPACED),
        ("deleted\u2800user", SHOWN_FOR_ERASED),
        # The Hangul fillers show as blanks but are no spaces to the username key.
        (f"mary\u3164{stem}", FILLER),
        (f"mary\uffa0{stem}", FILLER),
    ):
        refused = await client.post("/api/users", json=new_user(name, f"{unique_name()}@x.com"))
        assert errors(refused, 422) == {"username": [said]}, name
    braille = await client.post(
        "/api/users", json=new_user(f"mary\u2800{stem}", f"{unique_name()}@example.com")
    )
    assert braille.status_code == 201, braille.text
    again = await client.post(
        "/api/users", json=new_user(f"MARY {stem}", f"{unique_name()}@example.com")
    )
    assert errors(again, 409) == {"username": ["has already been taken"]}


UNADDRESSABLE = "must not contain /, ?, #, % or \\"
DOTS = "must not be dots only"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a/b", UNADDRESSABLE),  # `/api/profiles/a%2Fb` is the path `/api/profiles/a/b`
        ("a?b", UNADDRESSABLE),  # the path ends at `?`: `/profiles/a`
        ("a#b", UNADDRESSABLE),  # and at `#`
        ("50%", UNADDRESSABLE),  # read as an escape, here a broken one
        ("x%2Fy", UNADDRESSABLE),  # read as an escape: `x/y`
        ("a\\b", UNADDRESSABLE),  # browsers make it `a/b`
        (".", DOTS),  # `/profiles/.` is `/profiles/`
        ("..", DOTS),  # `/profiles/..` is `/`
        ("...", DOTS),
        # White space that shows as no space: named as what it is.
        ("\u5f20\u4e09\u2028\u674e\u56db", SEPARATOR),
        ("mary\u2029ann", SEPARATOR),
        ("mary\u1680ann", SEPARATOR),
    ],
)
async def test_a_username_that_no_profile_address_can_hold_is_refused(
    client: httpx.AsyncClient, name: str, message: str
) -> None:
    """Front ends link a profile as `/profiles/${username}`, with nothing encoded: a name
    that address would change could never be shown, followed or listed by."""
    answer = await client.post("/api/users", json=new_user(name, f"{unique_name()}@example.com"))
    assert errors(answer, 422) == {"username": [message]}
    jake = await register(client)
    renamed = await client.put("/api/user", json={"user": {"username": name}}, headers=jake.auth)
    assert errors(renamed, 422) == {"username": [message]}


async def test_an_account_keeps_a_name_taken_before_the_address_rules(
    client: httpx.AsyncClient, live_api: LiveServer
) -> None:
    """A name taken before the rules refused it stays its account's: the settings form,
    which sends it back unchanged, still saves; only a new name must meet them."""
    c = live_api.container
    old, email = unique_name("50% off? "), f"{unique_name()}@example.com"
    made = await register_user(
        RegisterUser(email, PASSWORD, nickname=old), c.commands, Caller(None, None)
    )
    after = {"bloghub-after": c.positions.seal(made.position)}
    login = {"user": {"email": email, "password": PASSWORD}}
    signed = await client.post("/api/users/login", json=login, headers=after)
    assert signed.status_code == 200, signed.text
    auth = {"authorization": f"Token {signed.json()['user']['token']}"}
    form = {"email": email, "username": old, "bio": "New bio", "image": "", "password": ""}
    saved = await client.put("/api/user", json={"user": form}, headers=auth)
    assert saved.status_code == 200, saved.text
    assert (saved.json()["user"]["username"], saved.json()["user"]["bio"]) == (old, "New bio")
    other = await client.put("/api/user", json={"user": {"username": old + "#2"}}, headers=auth)
    assert errors(other, 422) == {"username": [UNADDRESSABLE]}


async def test_v1_settings_keep_a_name_taken_before_the_rules_too(
    client: httpx.AsyncClient, live_api: LiveServer
) -> None:
    """The same on `/v1`: a PATCH sending the account's own nickname back as it is saves;
    a new nickname must meet every rule (here: no noncharacter, no %)."""
    c = live_api.container
    old, email = unique_name("50% \ufdd0off "), f"{unique_name()}@example.com"
    made = await register_user(
        RegisterUser(email, PASSWORD, nickname=old), c.commands, Caller(None, None)
    )
    after = {"bloghub-after": c.positions.seal(made.position)}
    login = {"email": email, "password": PASSWORD}
    signed = await client.post("/v1/auth/login", json=login, headers=after)
    assert signed.status_code == 200, signed.text
    auth = {"authorization": f"Bearer {signed.json()['access_token']}"}
    saved = await client.patch(
        "/v1/users/me", json={"nickname": old, "about_me": "kept"}, headers=auth
    )
    assert saved.status_code == 200, saved.text
    assert (saved.json()["user"]["nickname"], saved.json()["user"]["about_me"]) == (old, "kept")
    for new, problem in ((old + "2", "noncharacter"), (unique_name("50% "), "%")):
        other = await client.patch("/v1/users/me", json={"nickname": new}, headers=auth)
        assert other.status_code == 422, other.text
        assert problem in other.json()["error"]["fields"]["nickname"], other.text


async def test_a_settings_form_sent_back_whole_changes_only_what_differs(
    client: httpx.AsyncClient,
) -> None:
    jake = await register(client)
    form = {
        "email": jake.email,
        "username": jake.username,
        "bio": "New bio",
        "image": "",
        "password": "",
    }
    saved = await client.put("/api/user", json={"user": form}, headers=jake.auth)
    assert saved.status_code == 200, saved.text
    user = saved.json()["user"]
    assert (user["username"], user["bio"], user["image"]) == (jake.username, "New bio", None)
    login = {"user": {"email": jake.email, "password": PASSWORD}}
    assert (await client.post("/api/users/login", json=login)).status_code == 200, "same password"
    # A form that sends a null password means "unchanged" too.
    nulled = await client.put(
        "/api/user", json={"user": {**form, "password": None, "bio": "Null"}}, headers=jake.auth
    )
    assert nulled.status_code == 200, nulled.text
    assert (await client.post("/api/users/login", json=login)).status_code == 200, "same password"
    # A double-clicked Update Settings: both saved (one was 422, "another change of this
    # account is in progress", though the username was sent back unchanged).
    again = {"email": jake.email, "username": jake.username, "bio": "Again", "image": None}
    twice = await asyncio.gather(
        *(client.put("/api/user", json={"user": again}, headers=jake.auth) for _ in range(2))
    )
    assert [r.status_code for r in twice] == [200, 200], [r.text for r in twice]
