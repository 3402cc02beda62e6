"""An id in a /v1 path is read in one spelling: an upper-case or hyphenless id names the
same account or article as its canonical form (so nothing erased lingers under another
spelling), and a wrapped one (braces, ``urn:uuid:``) names nothing, in the error shape."""

from __future__ import annotations

import re
from collections.abc import Callable
from uuid import UUID

import httpx
import pytest

from bloghub.api.app import all_endpoints
from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_bad_input import _shape
from tests.e2e.test_erasure import erase, published_article
from tests.e2e.test_sessions import account, bearer, login
from tests.support import wait_until

OTHER = "01a21c55-c7a4-73d1-a44c-16eb1e146e7d"  # a comment or collection nobody has
ID_ROUTES = [
    (ep.method, ep.path) for ep in all_endpoints() if ep.path.startswith("/v1/") and "{" in ep.path
]


def spellings(user_id: str) -> list[str]:
    return [user_id.upper(), UUID(user_id).hex, UUID(user_id).hex.upper()]


async def test_an_erased_profile_is_gone_under_every_spelling_of_its_id(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    tokens = await login(client, await account(client, unique_email))
    user_id, token = tokens["user"]["id"], tokens["access_token"]
    about = {"nickname": "Ada", "about_me": "Counts things."}
    named = await client.patch("/v1/users/me", json=about, headers=bearer(token))
    assert named.status_code == 200, named.text
    after = {"bloghub-after": named.headers["bloghub-position"]}
    assert (await client.get(f"/v1/users/{user_id}", headers=after)).status_code == 200
    # Read under each spelling through the caches (no position to wait for), so whatever
    # those reads keep must go with the erasure.
    for spelt in spellings(user_id):
        public = await client.get(f"/v1/users/{spelt}")
        assert public.status_code == 200, public.text
        assert public.json()["user"]["id"] == user_id
        assert public.json()["user"] | about == public.json()["user"]

    erased = await erase(client, token, password=PASSWORD)
    assert erased.status_code == 204, erased.text
    after = {"bloghub-after": erased.headers["bloghub-position"]}
    assert (await client.get(f"/v1/users/{user_id}", headers=after)).status_code == 404

    async def gone_everywhere() -> bool:
        answers = [await client.get(f"/v1/users/{spelt}") for spelt in spellings(user_id)]
        return all(a.status_code == 404 for a in answers)

    # The caches are cleared once the erasure is applied: a few seconds is plenty, where an
    # entry no projector clears would stand for its whole life (15 minutes).
    await wait_until(gone_everywhere, timeout_s=10)
    for spelt in spellings(user_id):
        gone = await client.get(f"/v1/users/{spelt}")
        assert _shape(gone)["code"] == "not_found"
        assert "Ada" not in gone.text


async def test_a_follow_and_presence_by_another_spelling_are_of_the_same_user(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    writer = await login(client, await account(client, unique_email))
    reader = await login(client, await account(client, unique_email))
    writer_id, reader_auth = writer["user"]["id"], bearer(reader["access_token"])
    own = await client.get(
        f"/v1/users/{writer_id.upper()}/presence", headers=bearer(writer["access_token"])
    )
    assert own.status_code == 200, own.text
    assert own.json()["presence"]["user_id"] == writer_id

    followed = await client.put(f"/v1/users/{UUID(writer_id).hex}/follow", headers=reader_auth)
    assert followed.status_code == 200, followed.text
    after = {"bloghub-after": followed.headers["bloghub-position"]}
    profile = await client.get(f"/v1/users/{writer_id}", headers=after)
    assert profile.json()["user"]["followers"] == 1
    seen = await client.get(f"/v1/users/{writer_id.upper()}/presence", headers=reader_auth)
    assert seen.status_code == 200, seen.text
    assert seen.json()["presence"]["user_id"] == writer_id


# Spellings ``UUID()`` itself would take, yet no link of this API has.
WRAPS: dict[str, Callable[[str], str]] = {
    "braces": lambda v: f"{{{v}}}",
    "braces, upper case": lambda v: f"{{{v.upper()}}}",
    "urn": lambda v: f"urn:uuid:{v}",
    "urn, no hyphens": lambda v: f"urn:uuid:{UUID(v).hex}",
}


@pytest.mark.parametrize("wrap", list(WRAPS.values()), ids=list(WRAPS))
async def test_a_wrapped_id_names_nothing_on_any_route(
    client: httpx.AsyncClient, unique_email: Callable[[], str], wrap: Callable[[str], str]
) -> None:
    tokens = await login(client, await account(client, unique_email))
    token = tokens["access_token"]
    ids = {"user_id": tokens["user"]["id"], "article_id": await published_article(client, token)}
    for method, template in ID_ROUTES:
        path = re.sub(r"\{(\w+)\}", lambda m: wrap(ids.get(m.group(1), OTHER)), template)
        answer = await client.request(method, path, json={}, headers=bearer(token))
        assert answer.status_code == 404, (method, path, answer.text)
        assert _shape(answer)["code"] == "not_found", (method, path)
