"""Which requests have the rate limiter read the article they add to (its last withdraw or
delete) in its round trip: a like's and a collection change's, by a canonical id only."""

from __future__ import annotations

import uuid

import pytest

from bloghub.api.rate_limit import added_to

ARTICLE = str(uuid.UUID(int=0xABCDEF1234))
BOX = str(uuid.UUID(int=0x5678))


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("PUT", f"/v1/articles/{ARTICLE}/like", ARTICLE),
        ("DELETE", f"/v1/articles/{ARTICLE}/like", ARTICLE),
        ("PUT", f"/v1/collections/{BOX}/articles/{ARTICLE}", ARTICLE),
        ("DELETE", f"/v1/collections/{BOX}/articles/{ARTICLE}", ARTICLE),
        ("GET", f"/v1/articles/{ARTICLE}/like", None),
        ("POST", f"/v1/articles/{ARTICLE}/like", None),
        ("PUT", f"/v1/articles/{ARTICLE.upper()}/like", None),
        ("PUT", f"/v1/articles/{ARTICLE.replace('-', '')}/like", None),
        ("PUT", f"/v1/articles/{'x' * 36}/like", None),
        ("PUT", f"/v1/articles/{ARTICLE}/lik2", None),
        ("PUT", f"/v1/collections/{BOX}/articlez/{ARTICLE}", None),
        ("PUT", f"/v1/collections/{BOX}/articles/{ARTICLE}x", None),
        ("PUT", f"/api/articles/{ARTICLE}/favorite", None),
    ],
)
def test_only_likes_and_collection_changes_by_a_canonical_id(
    method: str, path: str, expected: str | None
) -> None:
    assert added_to({"method": method, "path": path}) == expected
