"""The pages' static files are sent in a coding the browser accepts, each coding with its
own ETag, and a browser's cached copy is revalidated however it names it."""

from __future__ import annotations

import httpx
import pytest

SCRIPT = "/docs/static/docs.js"


async def fetch(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await client.get(SCRIPT, headers=headers)


@pytest.mark.parametrize(
    ("accepted", "coding"),
    [
        ("gzip", "gzip"),
        ("GZIP;Q=0.5", "gzip"),
        ("x-gzip", "gzip"),
        ("*", "gzip"),
        ("br, gzip;q=0.8", "gzip"),
        ("gzip;q=0", None),
        ("gzip; q=0.000, br", None),
        ("identity", None),
        ("br", None),
        ("", None),
        ("gzip;q=0.5, identity", None),
        ("*;q=0.5, gzip;q=0.2", None),
    ],
)
async def test_a_file_comes_in_the_coding_the_client_accepts(
    client: httpx.AsyncClient, accepted: str, coding: str | None
) -> None:
    answer = await fetch(client, **{"accept-encoding": accepted})
    assert answer.status_code == 200, answer.text
    assert answer.headers.get("content-encoding") == coding
    assert "url: '/openapi.json'" in answer.text
    assert "accept-encoding" in answer.headers["vary"].lower()


@pytest.mark.parametrize("accepted", ["gzip;q=0, identity;q=0", "*;q=0", "br, *;q=0"])
async def test_a_client_that_accepts_no_coding_we_have_is_told_so(
    client: httpx.AsyncClient, accepted: str
) -> None:
    answer = await fetch(client, **{"accept-encoding": accepted})
    assert answer.status_code == 406, answer.text
    assert answer.json()["error"]["code"] == "not_acceptable"


async def test_each_coding_has_its_own_etag(client: httpx.AsyncClient) -> None:
    """A cache keeps both codings: one ETag for both would let it answer a client that
    cannot read gzip with the gzipped copy after a 304."""
    zipped = await fetch(client, **{"accept-encoding": "gzip"})
    plain = await fetch(client, **{"accept-encoding": "identity"})
    assert zipped.headers["etag"] != plain.headers["etag"]
    for answer, tag in ((zipped, plain.headers["etag"]), (plain, zipped.headers["etag"])):
        coding = answer.headers.get("content-encoding", "identity")
        other = await fetch(client, **{"accept-encoding": coding, "if-none-match": tag})
        assert other.status_code == 200
        assert other.headers["etag"] == answer.headers["etag"]


@pytest.mark.parametrize(
    "condition",
    ['"other", {etag}', '{etag},"other"', "W/{etag}", '"a", W/{etag}', "*"],
)
async def test_a_cached_copy_is_revalidated_however_it_is_named(
    client: httpx.AsyncClient, condition: str
) -> None:
    first = await fetch(client, **{"accept-encoding": "gzip"})
    etag = first.headers["etag"]
    again = await fetch(
        client, **{"accept-encoding": "gzip", "if-none-match": condition.format(etag=etag)}
    )
    assert again.status_code == 304, condition
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert "accept-encoding" in again.headers["vary"].lower()


async def test_a_changed_file_is_sent_again(client: httpx.AsyncClient) -> None:
    answer = await fetch(client, **{"if-none-match": '"other", W/"another"'})
    assert answer.status_code == 200
    assert "url: '/openapi.json'" in answer.text
