"""The search requests sent to OpenSearch, built from validated parameters. The words a
caller sends are only ever the ``query`` text of ``multi_match`` (analyzed as text, no
syntax of any kind); tags and authors are exact ``term`` filters. Nothing a caller sends
becomes query DSL."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from bloghub.errors import NotFound

ARTICLE_FIELDS = [
    "title^4",
    "title.en^4",
    "tags.text^2",
    "tags.text.en^2",
    "content",
    "content.en",
]
USER_FIELDS = ["nickname^3", "nickname.en^3", "about", "about.en"]
# Up to two words, all of them; past that, three in four (in the same field).
MINIMUM_MATCH = "2<75%"
HIGHLIGHT: dict[str, Any] = {
    # OpenSearch escapes the text (HTML encoder) and adds only our tags.
    "encoder": "html",
    "pre_tags": ["<mark>"],
    "post_tags": ["</mark>"],
    "fields": {
        "title": {"number_of_fragments": 0},
        "title.en": {"number_of_fragments": 0},
        "content": {"fragment_size": 160, "number_of_fragments": 2},
        "content.en": {"fragment_size": 160, "number_of_fragments": 2},
    },
}
# Newer articles rank higher: up to twice the relevance of the same text, half of that
# boost gone after 30 days.
RECENCY = [
    {"weight": 1},
    {"gauss": {"published_at": {"origin": "now", "scale": "30d", "offset": "1d", "decay": 0.5}}},
]


def _words(q: str, fields: list[str]) -> dict[str, Any]:
    return {
        "multi_match": {
            "query": q,
            "type": "most_fields",
            "fields": fields,
            "minimum_should_match": MINIMUM_MATCH,
        }
    }


def articles_request(
    q: str, *, tag: str | None, author: str | None, limit: int, after: list[Any] | None
) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [{"term": {"state": "published"}}]
    if tag is not None:
        filters.append({"term": {"tags": tag}})
    if author is not None:
        filters.append({"term": {"author_id": author}})
    body: dict[str, Any] = {
        "query": {
            "function_score": {
                "query": {"bool": {"must": [_words(q, ARTICLE_FIELDS)], "filter": filters}},
                "functions": RECENCY,
                "score_mode": "sum",
                "boost_mode": "multiply",
            }
        },
        "sort": ["_score", {"published_at": "desc"}, {"id": "asc"}],
        "size": limit + 1,  # one more tells whether there is a next page
        "track_total_hits": True,
        "_source": ["id", "title", "tags", "author_id", "published_at"],
        "highlight": HIGHLIGHT,
    }
    if after is not None:
        body["search_after"] = after
    return body


def users_request(q: str, *, limit: int) -> dict[str, Any]:
    return {
        "query": {
            "bool": {
                "must": [_words(q, USER_FIELDS)],
                "filter": [{"term": {"erased": False}}],
            }
        },
        "sort": ["_score", {"id": "asc"}],
        "size": limit,
        "track_total_hits": True,
        "_source": ["id", "nickname", "about"],
    }


def encode_cursor(sort: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(sort))).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """The sort values a cursor holds. A cursor of the documented form that this API never
    handed out names no page: 404 (start again without one), as the other lists answer."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, ValueError):
        values = None
    if not (
        isinstance(values, list)
        and len(values) == 3
        and isinstance(values[0], int | float)
        and not isinstance(values[0], bool)
        and isinstance(values[1], int)
        and not isinstance(values[1], bool)
        and isinstance(values[2], str)
    ):
        raise NotFound("no page at that cursor; start again without one")
    return values


def highlights(hit: Mapping[str, Any]) -> dict[str, Any]:
    """The fragments of a hit, from whichever analysis of a field matched."""
    found = hit.get("highlight") or {}
    title = found.get("title") or found.get("title.en") or [None]
    content = found.get("content") or found.get("content.en") or []
    return {"title": title[0], "content": list(content)}
