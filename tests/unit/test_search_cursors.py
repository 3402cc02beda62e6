"""Search cursors: a page sequence carries where it stands, the time its recency boost is
measured from and the view it reads, sealed, so a caller can neither forge a view nor
shift the scores between pages."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bloghub.api.search_queries import Cursor, CursorSeal, articles_request
from bloghub.errors import NotFound

SECRET = "a-test-secret"

cursors = st.builds(
    Cursor,
    after=st.tuples(
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.integers(-(2**53), 2**53),
        st.text(max_size=40),
    ).map(list),
    origin_ms=st.integers(0, 2**53),
    view=st.none()
    | st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=240
    ),
)


@given(cursors)
def test_a_sealed_cursor_opens_to_what_was_sealed(cursor: Cursor) -> None:
    sealed = CursorSeal(SECRET).seal(cursor)
    assert set(sealed) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert CursorSeal(SECRET).open(sealed) == cursor


def _unsealed(values: list[Any]) -> str:
    """A cursor of the form the API handed out before cursors were sealed."""
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


@pytest.mark.parametrize(
    "sealed",
    [
        _unsealed([1.5, 1700000000000, "x"]),
        _unsealed([1.5, 1700000000000, "x", 1700000000000, "c29tZS12aWV3"]),
        "bm90LWEtY3Vyc29y",
        "",
        "A",
        "!!",
    ],
)
def test_a_cursor_this_api_did_not_seal_names_no_page(sealed: str) -> None:
    with pytest.raises(NotFound):
        CursorSeal(SECRET).open(sealed)


def test_a_changed_cursor_or_another_deployments_names_no_page() -> None:
    cursor = Cursor(after=[2.5, 1700000000000, "an-id"], origin_ms=1700000000000, view="dmlldw==")
    sealed = CursorSeal(SECRET).seal(cursor)
    raw = bytearray(base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4)))
    raw[-3] ^= 1  # a byte of the view id
    changed = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(NotFound):
        CursorSeal(SECRET).open(changed)
    with pytest.raises(NotFound):
        CursorSeal("another-secret").open(sealed)


def test_a_cursor_shows_nothing_of_the_view_it_names() -> None:
    """The view's id spells the index's name (the deployment's prefix), its uuid and the
    nodes holding it: a cursor read as base64 showed them."""
    view = base64.b64encode(b"\x00bench-prefix-search-g1\x16index-uuid-node-id").decode()
    cursor = Cursor(after=[2.5, 1700000000000, "an-id"], origin_ms=1700000000000, view=view)
    sealed = CursorSeal(SECRET).seal(cursor)
    raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    for shown in (view.encode(), b"bench-prefix", b"an-id", b"1700000000000"):
        assert shown not in raw
    assert CursorSeal(SECRET).seal(cursor) != sealed  # a fresh nonce each time
    assert CursorSeal(SECRET).open(sealed) == cursor


def test_every_page_of_a_search_measures_recency_from_its_first_page() -> None:
    """Built at any later time, a page's request scores articles as the first page did."""
    first = articles_request(
        "w", tag=None, author=None, limit=10, after=None, origin_ms=1700000000000
    )
    later = articles_request(
        "w", tag=None, author=None, limit=10, after=[1.0, 1, "x"], origin_ms=1700000000000
    )
    assert first["query"] == later["query"]
    decay = first["query"]["function_score"]["functions"][1]["gauss"]["published_at"]
    assert decay["origin"] == 1700000000000
