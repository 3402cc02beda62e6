"""A path no route has is a 404 in its API's error shape, counted in the metrics under
``unmatched`` like any other request, and no server error in the log."""

from __future__ import annotations

import re

import httpx
import pytest
from structlog.testing import capture_logs

from bloghub.settings import Settings
from tests.e2e.conduit_client import register, write
from tests.e2e.test_ops import operator


async def unmatched_404s(client: httpx.AsyncClient, settings: Settings) -> float:
    text = (await client.get("/metrics", headers=operator(settings))).text
    series = 'bloghub_http_requests_total{method="GET",route="unmatched",status="404"}'
    found = re.search(re.escape(series) + r" (\S+)", text)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/nothing/here", {"errors": {"path": ["not found"]}}),
        ("/api/articles/some-slug/nothing", {"errors": {"path": ["not found"]}}),
        ("/v1/nothing/here", None),
    ],
)
async def test_an_unmatched_path_is_a_counted_404_and_no_server_error(
    client: httpx.AsyncClient, settings: Settings, path: str, body: object
) -> None:
    before = await unmatched_404s(client, settings)
    with capture_logs() as lines:
        answer = await client.get(path)
        # Read in the capture: the request's own accounting is done once this is.
        counted = await unmatched_404s(client, settings)
    assert answer.status_code == 404, answer.text
    if body is not None:
        assert answer.json() == body
    else:
        assert answer.json()["error"]["code"] == "not_found"
    assert counted == before + 1
    assert not [line for line in lines if line["log_level"] in ("error", "critical")], lines


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/user", {"errors": {"method": ["not allowed"]}}),
        ("/v1/users/me", None),
    ],
)
async def test_a_method_a_path_lacks_is_a_405_in_its_apis_shape(
    client: httpx.AsyncClient, path: str, body: object
) -> None:
    answer = await client.request("PATCH" if path.startswith("/api") else "TRACE", path)
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"]
    if body is not None:
        assert answer.json() == body
    else:
        assert answer.json()["error"]["code"] == "method_not_allowed"


async def test_a_slash_redirect_stays_on_this_host(client: httpx.AsyncClient) -> None:
    """A path that exists without its trailing slash redirects there: by path alone, so a
    forged Host header (a cache or proxy passing it on) cannot send anyone elsewhere."""
    answer = await client.get(
        "/v1/tags/", params={"x": "1"}, headers={"host": "evil.example"}, follow_redirects=False
    )
    assert answer.status_code == 307, answer.text
    assert answer.headers["location"] == "/v1/tags?x=1"
    doubled = await client.get("//v1/tags/", headers={"host": "evil.example"})
    assert not doubled.headers.get("location", "").startswith("//")


async def test_an_encoded_slash_is_part_of_the_name_not_a_trailing_slash(
    client: httpx.AsyncClient,
) -> None:
    """``%2F`` ends the name, not the path: a redirect to the path without it would act on
    another resource (a DELETE of ``<slug>%2F`` deleting ``<slug>``). No route has such a
    name, so it is its API's 404; only a real trailing slash is redirected."""
    author = await register(client)
    slug = (await write(client, author))["slug"]
    with capture_logs() as lines:
        deleting = await client.delete(f"/api/articles/{slug}%2F", headers=author.auth)
    assert not [line for line in lines if line["log_level"] in ("error", "critical")], lines
    assert deleting.status_code == 404, deleting.headers
    assert deleting.json() == {"errors": {"path": ["not found"]}}
    assert (await client.get(f"/api/articles/{slug}")).status_code == 200
    for path in (f"/api/profiles/{author.username}%2F", f"/api/profiles/{author.username}%2f/"):
        profile = await client.get(path)
        assert profile.status_code == 404, (path, profile.headers)
        assert profile.json() == {"errors": {"path": ["not found"]}}
    # Inside a name, before a real trailing slash: the redirect would name the decoded
    # path, another resource (an unfollow of ``jake`` for ``jake%2Ffollow/``).
    for path in (
        f"/api/profiles/{author.username}%2Ffollow/",
        f"/api/articles/{slug}%2Fcomments/",
        "/v1/articles/abc%2fcomments/",
    ):
        inside = await client.get(path, headers=author.auth)
        assert inside.status_code == 404, (path, inside.headers)
    listing = await client.get("/v1/articles/%2F")
    assert listing.status_code == 404, listing.headers
    assert listing.json()["error"]["code"] == "not_found"
    real = await client.get(f"/api/profiles/{author.username}/")
    assert real.status_code == 307, real.text
    assert real.headers["location"] == f"/api/profiles/{author.username}"


async def test_a_slash_redirect_names_the_path_as_sent(client: httpx.AsyncClient) -> None:
    """An escaped ``%`` stays escaped: written back decoded, ``%2563`` became ``%63``,
    which the client reads as ``c``, another resource (a DELETE acting on it)."""
    for path in (
        "/api/articles/%2563onduit-slug/",
        "/v1/articles/%25301a25156-9931-7049-a971-64571a20d89f/",
        "/api/profiles/x%25/",
        "/api/profiles/caf%C3%A9/",
    ):
        answer = await client.get(path, params={"a": "%25"}, follow_redirects=False)
        assert answer.status_code == 307, (path, answer.text)
        assert answer.headers["location"] == path.rstrip("/") + "?a=%2525"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_the_root_of_api_is_a_404_not_a_redirect_to_one(
    client: httpx.AsyncClient, method: str
) -> None:
    """A slash is only ever taken away: ``/api`` is no path, nor is ``/api/``."""
    for path in ("/api", "/api/"):
        answer = await client.request(method, path, follow_redirects=False)
        assert answer.status_code == 404, (method, path, answer.headers)
        assert answer.json() == {"errors": {"path": ["not found"]}}
