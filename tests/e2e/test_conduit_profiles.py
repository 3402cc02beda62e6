"""RealWorld profiles at /api: by username (in any case), following, and usernames kept
unique across /api and /v1 nickname changes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conduit_client import PASSWORD, errors, register, unique_name, write
from tests.e2e.test_erasure import erase
from tests.e2e.test_sessions import account, bearer, login

pytestmark = pytest.mark.usefixtures("live_api")


async def test_a_profile_shows_whether_the_caller_follows_and_follows_change_it(
    client: httpx.AsyncClient,
) -> None:
    jake, ann = await register(client), await register(client)
    seen = await client.get(f"/api/profiles/{jake.username}", headers=jake.auth)
    assert seen.status_code == 200, seen.text
    assert seen.json() == {
        "profile": {"username": jake.username, "bio": None, "image": None, "following": False}
    }
    followed = await client.post(f"/api/profiles/{jake.username}/follow", headers=ann.auth)
    assert followed.status_code == 200, followed.text
    assert followed.json()["profile"]["following"] is True
    by_case = await client.get(f"/api/profiles/{jake.username.upper()}", headers=ann.auth)
    assert by_case.json()["profile"] == {**seen.json()["profile"], "following": True}
    twice = await client.post(f"/api/profiles/{jake.username}/follow", headers=ann.auth)
    assert twice.json()["profile"]["following"] is True
    unfollowed = await client.delete(f"/api/profiles/{jake.username}/follow", headers=ann.auth)
    assert unfollowed.status_code == 200, unfollowed.text
    assert unfollowed.json()["profile"]["following"] is False
    after = await client.get(f"/api/profiles/{jake.username}", headers=ann.auth)
    assert after.json()["profile"]["following"] is False


async def test_profile_errors_follow_the_spec(client: httpx.AsyncClient) -> None:
    jake = await register(client)
    nobody = unique_name("nobody")
    assert errors(await client.get(f"/api/profiles/{nobody}"), 404) == {"profile": ["not found"]}
    follow = await client.post(f"/api/profiles/{nobody}/follow", headers=jake.auth)
    assert errors(follow, 404) == {"profile": ["not found"]}
    anonymous = await client.post(f"/api/profiles/{jake.username}/follow")
    assert errors(anonymous, 401) == {"token": ["is missing"]}
    unfollow = await client.delete(f"/api/profiles/{jake.username}/follow")
    assert errors(unfollow, 401) == {"token": ["is missing"]}
    myself = await client.post(f"/api/profiles/{jake.username}/follow", headers=jake.auth)
    assert errors(myself, 422) == {"username": ["cannot be yourself"]}
    # Unfollowing yourself ends nothing, as any unfollow of someone not followed (was 422).
    myself = await client.delete(f"/api/profiles/{jake.username}/follow", headers=jake.auth)
    assert myself.status_code == 200, myself.text
    assert myself.json()["profile"]["following"] is False


async def test_a_v1_nickname_change_is_a_username_change_and_cannot_take_a_taken_one(
    client: httpx.AsyncClient,
) -> None:
    jake, ann = await register(client), await register(client)
    v1 = {"authorization": f"Bearer {ann.token}"}
    taken = await client.patch("/v1/users/me", json={"nickname": jake.username.upper()}, headers=v1)
    assert taken.status_code == 409, taken.text
    assert taken.json()["error"]["fields"] == {"nickname": "already taken"}
    # Nor the name with characters that show nothing in it: it would look the same.
    name = jake.username
    for copy in (f"{name}\u200c", f"{name[:2]}\u200d{name[2:]}", f"{name}\U000e0020"):
        taken = await client.patch("/v1/users/me", json={"nickname": copy}, headers=v1)
        assert taken.status_code == 409, (copy, taken.text)
        looked_up = await client.get(f"/api/profiles/{copy}")
        assert looked_up.json()["profile"]["username"] == name
    renamed = unique_name("annie")
    moved = await client.patch("/v1/users/me", json={"nickname": renamed}, headers=v1)
    assert moved.status_code == 200, moved.text
    profile = await client.get(f"/api/profiles/{renamed}", headers=v1)
    assert profile.json()["profile"]["username"] == renamed
    assert errors(await client.get(f"/api/profiles/{ann.username}"), 404)


async def test_an_erased_account_frees_its_username_and_its_articles_show_a_deleted_author(
    client: httpx.AsyncClient,
) -> None:
    jake = await register(client)
    slug = (await write(client, jake, unique_name("Left behind ")))["slug"]
    before = await client.get(f"/api/articles/{slug}", headers=jake.auth)
    assert before.json()["article"]["author"]["username"] == jake.username
    gone = await erase(client, jake.token, password=PASSWORD)
    assert gone.status_code == 204, gone.text
    assert errors(await client.get(f"/api/profiles/{jake.username}"), 404)
    after = {"bloghub-after": gone.headers["bloghub-position"]}
    article = (await client.get(f"/api/articles/{slug}", headers=after)).json()["article"]
    assert article["author"]["username"] == "deleted user"
    # The name was personal data: it is free for anyone now.
    await register(client, jake.username)


async def test_an_account_without_a_nickname_goes_by_its_id_and_no_one_can_take_it(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """An account signed up through /v1 has no nickname: RealWorld shows it by its id,
    which leads to it (its profile, its articles), and no one may take that id, in any
    spelling, as a username to pass for it."""
    tokens = await login(client, await account(client, unique_email))
    me = bearer(tokens["access_token"])
    author = tokens["user"]["id"]
    title = unique_name("Nameless ")
    made = await client.post(
        "/v1/articles", json={"title": title, "content": "text", "tags": []}, headers=me
    )
    published = await client.post(
        f"/v1/articles/{made.json()['article']['id']}/publish", headers=me
    )
    after = {"bloghub-after": published.headers["bloghub-position"]}
    listed = await client.get("/api/articles", params={"author": author}, headers=after)
    assert [(a["title"], a["author"]["username"]) for a in listed.json()["articles"]] == [
        (title, author)
    ]
    profile = await client.get(f"/api/profiles/{author}")
    assert profile.json()["profile"]["username"] == author
    # In any case, as a username is found (it was 404 upper-cased).
    upper = await client.get(f"/api/profiles/{author.upper()}")
    assert upper.status_code == 200, upper.text
    assert upper.json()["profile"]["username"] == author
    # Full-width hyphens or letters fold to the id (usernames are looked up folded).
    wide = author.replace("-", "\uff0d")
    wide_letter = "".join(chr(ord(ch) + 0xFEE0) if ch.isalpha() else ch for ch in author)
    # Dashes and minus signs read as its hyphens (U+2010 was taken as a nickname).
    dashed = tuple(author.replace("-", dash) for dash in ("\u2010", "\u2013", "\u2212"))
    spellings = (author, author.upper(), author.replace("-", ""), wide, wide_letter, *dashed)
    for spelling in spellings:
        body = {"user": {"username": spelling, "email": unique_email(), "password": PASSWORD}}
        assert "username" in errors(await client.post("/api/users", json=body), 422)
    jake = await register(client)
    renamed = await client.put("/api/user", json={"user": {"username": author}}, headers=jake.auth)
    assert "username" in errors(renamed, 422)
    for spelling in (author.upper(), wide, wide_letter, *dashed):
        renamed = await client.put(
            "/api/user", json={"user": {"username": spelling}}, headers=jake.auth
        )
        assert "username" in errors(renamed, 422)
        patched = await client.patch("/v1/users/me", json={"nickname": spelling}, headers=me)
        assert patched.status_code == 422, patched.text
        assert patched.json()["error"]["fields"]["nickname"] == "must not be an account id"
    # Its address still leads to it.
    profile = await client.get(f"/api/profiles/{author}")
    assert profile.json()["profile"]["username"] == author


async def test_no_one_takes_the_name_erased_authors_are_shown_by(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    """An erased author's articles show "deleted user": an account by that name (in any
    spelling usernames fold together) would receive every such author's profile link."""
    tokens = await login(client, await account(client, unique_email))
    me = bearer(tokens["access_token"])
    jake = await register(client)
    wide = "".join(chr(ord(ch) + 0xFEE0) for ch in "deleted") + " user"  # full-width letters
    spaced = ("deleted  user", "Deleted\u3000 User")  # a page shows runs of spaces as one
    for spelling in ("deleted user", "Deleted User", "DELETED USER", wide, *spaced):
        body = {"user": {"username": spelling, "email": unique_email(), "password": PASSWORD}}
        assert "username" in errors(await client.post("/api/users", json=body), 422)
        renamed = await client.put(
            "/api/user", json={"user": {"username": spelling}}, headers=jake.auth
        )
        assert "username" in errors(renamed, 422)
        patched = await client.patch("/v1/users/me", json={"nickname": spelling}, headers=me)
        assert patched.status_code == 422, patched.text
        assert "erased" in patched.json()["error"]["fields"]["nickname"]
    assert (await client.get("/api/profiles/deleted%20user")).status_code == 404
