"""The search requests sent to OpenSearch, built from validated parameters. The words a
caller sends are only ever the ``query`` text of ``multi_match`` (analyzed as text, no
syntax of any kind); tags and authors are exact ``term`` filters. Nothing a caller sends
becomes query DSL, and a cursor is sealed (AES-GCM): the view and sort values it names
are ones this API handed out, and the view's id is not shown."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bloghub.api.search_fragments import MARK, UNMARK, clipped, on_whole_clusters, plain_text
from bloghub.errors import NoPage
from bloghub.readmodels import tag_key

ARTICLE_FIELDS = [
    "title^4",
    "title.en^4",
    "tags.text^2",
    "tags.text.en^2",
    "content",
    "content.en",
]
USER_FIELDS = ["nickname^3", "nickname.en^3", "about", "about.en"]
# Up to two words, all of them; past that, three in four, wherever in the article each
# word is (title, tags or text).
MINIMUM_MATCH = "2<75%"
HIGHLIGHT: dict[str, Any] = {
    # OpenSearch escapes the text (HTML encoder) and adds only our tags.
    "encoder": "html",
    "pre_tags": ["<mark>"],
    "post_tags": ["</mark>"],  # MARK, UNMARK
    "fields": {
        "title": {"number_of_fragments": 0},
        "title.en": {"number_of_fragments": 0},
        "content": {"fragment_size": 160, "number_of_fragments": 2},
        "content.en": {"fragment_size": 160, "number_of_fragments": 2},
    },
}


def recency(origin_ms: int) -> list[dict[str, Any]]:
    """Newer articles rank higher: up to twice the relevance of the same text, half of that
    boost gone after 30 days. Measured from ``origin_ms`` (the first page's time, carried
    by its cursor), not from "now": the pages of one search then score every article alike."""
    decay = {"origin": origin_ms, "scale": "30d", "offset": "1d", "decay": 0.5}
    return [{"weight": 1}, {"gauss": {"published_at": decay}}]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _words(q: str, fields: list[str]) -> dict[str, Any]:
    # ``cross_fields`` takes the fields of one analysis as one big field, so the words may
    # sit in different fields (one in the title, one in the text or a tag) and the
    # minimum applies to the article, not to each field. Fields of the other analysis
    # (``.en``) form a second group OpenSearch ORs with the first.
    return {
        "multi_match": {
            "query": q,
            "type": "cross_fields",
            "fields": fields,
            "minimum_should_match": MINIMUM_MATCH,
        }
    }


def articles_request(
    q: str,
    *,
    tag: str | None,
    author: str | None,
    limit: int,
    after: list[Any] | None,
    origin_ms: int | None = None,
) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [{"term": {"state": "published"}}]
    if tag is not None:
        # Tags are one tag whatever their case: a document keeps each as ``tag_key`` gives
        # it (lower-cased as the read model keys it, non-ASCII letters too). One indexed
        # before that field has only the tags as written, matched ignoring ASCII case until
        # it is replayed.
        either = [
            {"term": {"tag_keys": tag_key(tag)}},
            {"term": {"tags": {"value": tag, "case_insensitive": True}}},
        ]
        filters.append({"bool": {"should": either, "minimum_should_match": 1}})
    if author is not None:
        filters.append({"term": {"author_id": author}})
    body: dict[str, Any] = {
        "query": {
            "function_score": {
                "query": {"bool": {"must": [_words(q, ARTICLE_FIELDS)], "filter": filters}},
                "functions": recency(now_ms() if origin_ms is None else origin_ms),
                "score_mode": "sum",
                "boost_mode": "multiply",
            }
        },
        "sort": ["_score", {"published_at": "desc"}, {"id": "asc"}],
        "size": limit + 1,  # one more tells whether there is a next page
        "track_total_hits": True,
        # The version (``v``) tells a later page whether the article changed since its view;
        # the content is where each highlight fragment is moved to whole characters
        # (``search_fragments``): OpenSearch cuts fragments anywhere in a run of emoji.
        "_source": ["id", "v", "title", "tags", "author_id", "published_at", "content"],
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


CURSOR_LABEL = b"bloghub search cursor v3"
_NONCE_BYTES = 12


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: the last hit's sort values, the time the recency boost
    is measured from, and the point-in-time view the pages read (None: the index itself,
    when the cluster would hold no more views)."""

    after: list[Any]
    origin_ms: int
    view: str | None
    # The search it pages (``search_digest``): a cursor pages that search only, never
    # another one run against the view it names (which keeps text since removed).
    search: str = ""
    # When the page that gave it was answered (ms): it lives as long as its view is kept
    # after that page, whenever the cluster's sweep closes the view itself.
    issued_ms: int = 0


def search_digest(q: str, tag: str | None, author: str | None) -> str:
    """A search's words and filters, as a cursor of its pages records them."""
    return hashlib.sha256(orjson.dumps([q, tag, author])).hexdigest()[:32]


class CursorSeal:
    """Seals cursors (AES-GCM under a key of their own): a cursor names an OpenSearch view
    by id, and only views this API opened may be searched; the view id, which spells the
    index's name, its uuid and the nodes holding it, is not for callers to read, so the
    cursor is encrypted, not only signed."""

    def __init__(self, secret: str) -> None:
        self._aead = AESGCM(hmac.new(secret.encode(), CURSOR_LABEL, hashlib.sha256).digest())

    def seal(self, cursor: Cursor) -> str:
        payload = orjson.dumps(
            [*cursor.after, cursor.origin_ms, cursor.view, cursor.search, cursor.issued_ms]
        )
        nonce = os.urandom(_NONCE_BYTES)
        raw = nonce + self._aead.encrypt(nonce, payload, CURSOR_LABEL)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def open(self, sealed: str) -> Cursor:
        """The cursor ``sealed`` holds. One this API never handed out names no page: 404
        (start again without one), as the other lists answer."""
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
            payload = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], CURSOR_LABEL)
        except (binascii.Error, ValueError, InvalidTag):
            raise NoPage() from None
        return _cursor(orjson.loads(payload))


def _cursor(values: Any) -> Cursor:
    # Sealed by this API, so well formed unless the code that sealed it differed.
    if not (
        isinstance(values, list)
        and len(values) == 7
        and isinstance(values[0], int | float)
        and not isinstance(values[0], bool)
        and isinstance(values[1], int)
        and not isinstance(values[1], bool)
        and isinstance(values[2], str)
        and isinstance(values[3], int)
        and (values[4] is None or isinstance(values[4], str))
        and isinstance(values[5], str)
        and isinstance(values[6], int)
        and not isinstance(values[6], bool)
    ):
        raise NoPage()
    return Cursor(values[:3], values[3], values[4], values[5], values[6])


_MARKED = re.compile(f"{MARK}(.*?){UNMARK}", re.DOTALL)
_ENTITY = re.compile(r"&(?:#[0-9]+|#x[0-9A-Fa-f]+|[A-Za-z]+);")


def highlights(hit: Mapping[str, Any]) -> dict[str, Any]:
    """The fragments of a hit, with every word marked that either analysis of a field
    matched: the plain one (Chinese words, exact forms) and the English stemmer's (where
    "deployed" finds "deploying"). Each marks only what it matched itself, so the fragments
    of one are shown with the other's matched words marked too, and a passage only the
    stemmer matched is shown beside the plain one's. Every fragment starts and ends on
    whole characters of the field's text (``search_fragments``), and so do its marks,
    before its words are marked elsewhere: a token cut within an emoji marks nothing."""
    found = hit.get("highlight") or {}
    source = hit.get("_source") or {}
    titles = _whole([*found.get("title", []), *found.get("title.en", [])], source.get("title"))
    plain = _whole(found.get("content", []), source.get("content"))
    stemmed = _whole(found.get("content.en", []), source.get("content"))
    words = marked_words([*titles, *plain, *stemmed])
    title = titles[0] if titles else None
    return {
        "title": None if title is None else marked(title, words),
        "content": [marked(f, words) for f in _passages(plain, stemmed, source.get("content"))],
    }


CONTENT_FRAGMENTS: int = HIGHLIGHT["fields"]["content"]["number_of_fragments"]


# A fragment OpenSearch could not cut (no word break near its size) is clipped to this
# many characters, from this many ahead of its first mark: twice the size asked for, so a
# fragment OpenSearch did cut is never touched.
CLIPPED_TO = 2 * HIGHLIGHT["fields"]["content"]["fragment_size"]
CONTEXT_BEFORE = HIGHLIGHT["fields"]["content"]["fragment_size"] // 2


def _whole(fragments: list[str], source: object) -> list[str]:
    """``fragments``, each clipped to a passage (``clipped``), on whole clusters of
    ``source``, the text they were cut from."""
    short = [clipped(fragment, CLIPPED_TO, CONTEXT_BEFORE) for fragment in fragments]
    if not isinstance(source, str):
        return short
    return [on_whole_clusters(fragment, source) for fragment in short]


def _passages(plain: list[str], stemmed: list[str], source: object) -> list[str]:
    """The plain analysis's fragments (the stemmer's if it has none), then the stemmer's
    of passages of the text none of them shows, up to ``CONTENT_FRAGMENTS``, in the order
    they stand in the text. Where the text is not known, no passage is told apart."""
    if not plain:
        return stemmed[:CONTENT_FRAGMENTS]

    def span(fragment: str) -> tuple[int, int] | None:
        text = plain_text(fragment)
        at = source.find(text) if isinstance(source, str) and text else -1
        return None if at < 0 else (at, at + len(text))

    kept = list(plain)
    for fragment in stemmed:
        if len(kept) >= CONTENT_FRAGMENTS:
            break
        mine, spans = span(fragment), [span(k) for k in kept]
        if mine and all(s and (s[1] <= mine[0] or mine[1] <= s[0]) for s in spans):
            kept.append(fragment)
    located = [(place, k) for place, k in ((span(k), k) for k in kept) if place is not None]
    if len(located) == len(kept):
        kept = [k for _, k in sorted(located, key=lambda pair: pair[0])]
    return kept[:CONTENT_FRAGMENTS]


def marked_words(fragments: list[str]) -> set[str]:
    """The (escaped) words marked in ``fragments``."""
    return {m.group(1) for f in fragments for m in _MARKED.finditer(f) if m.group(1)}


def marked(fragment: str, words: set[str]) -> str:
    """``fragment`` (escaped text with marks) with each of ``words`` marked wherever it
    stands as a word of its own, besides what is marked already: a word of a script
    written with spaces (Latin, Cyrillic, ...) not inside a longer one (an apostrophe
    within a word, as in don't, joins it, as the tokenizers have it); a word of one written
    without (Chinese, Japanese) anywhere."""
    text, spans = _unmarked(fragment)
    # The escaper's entities (&amp; &#x27;) are no words: nothing is marked inside one,
    # and each stands in the text as the character it encodes (``_shadow``).
    entities = [(m.start(), m.end()) for m in _ENTITY.finditer(text)]
    shadow = _shadow(text)
    for word in words:
        edges = (_spaced(word[0]), _spaced(word[-1]))
        for m in re.finditer(re.escape(word), text, re.IGNORECASE):
            start, end = m.start(), m.end()
            if edges[0] and start > 0 and _in_word(shadow[start - 1]):
                continue
            if edges[1] and end < len(shadow) and _in_word(shadow[end]):
                continue
            if not any(a < end and start < b for a, b in entities):
                spans.append((start, end))
    return _with_marks(text, spans)


_APOSTROPHES = ("&#x27;", "&#39;", "&apos;")
# Scripts written without spaces between words: a word of theirs stands anywhere.
_UNSPACED = (
    "CJK",
    "HIRAGANA",
    "KATAKANA",
    "HALFWIDTH KATAKANA",
    "THAI",
    "LAO",
    "KHMER",
    "MYANMAR",
)


def _shadow(text: str) -> str:
    """``text`` with each entity replaced, length kept, by what it is to a word boundary:
    an apostrophe between two letters (don't) by letters, as it joins them into one word;
    anything else (a quote around a word, ``&amp;``) by spaces."""

    def stands_for(m: re.Match[str]) -> str:
        joins = (
            m.group(0) in _APOSTROPHES
            and m.start() > 0
            and m.end() < len(text)
            and _in_word(text[m.start() - 1])
            and _in_word(text[m.end()])
        )
        return ("a" if joins else " ") * len(m.group(0))

    return _ENTITY.sub(stands_for, text)


def _in_word(char: str) -> bool:
    """A letter, digit or mark (a Devanagari vowel sign is part of its letter)."""
    return char == "_" or unicodedata.category(char)[0] in "LNM"


def _spaced(char: str) -> bool:
    """A character of a word in a script whose words stand apart (Latin, full-width Latin,
    Cyrillic, Korean, Devanagari...), not one written without spaces (Chinese, Japanese,
    Thai...)."""
    return _in_word(char) and not unicodedata.name(char, "").startswith(_UNSPACED)


def _unmarked(fragment: str) -> tuple[str, list[tuple[int, int]]]:
    """The text of ``fragment`` without its marks, and where they stood."""
    text: list[str] = []
    spans: list[tuple[int, int]] = []
    at, length = 0, 0
    for m in _MARKED.finditer(fragment):
        before = fragment[at : m.start()]
        text.append(before)
        length += len(before)
        text.append(m.group(1))
        spans.append((length, length + len(m.group(1))))
        length += len(m.group(1))
        at = m.end()
    text.append(fragment[at:])
    return "".join(text), spans


def _with_marks(text: str, spans: list[tuple[int, int]]) -> str:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:  # overlapping; marks side by side stay two
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    out, at = [], 0
    for start, end in merged:
        out += [text[at:start], MARK, text[start:end], UNMARK]
        at = end
    out.append(text[at:])
    return "".join(out)
