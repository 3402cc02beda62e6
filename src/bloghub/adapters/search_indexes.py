"""The search indexes as both sides know them: names, analyzers, mappings and the version
rule of article documents. The projectors write these indexes; the API reads them.

Text is analyzed twice, per field: ``icu`` segments Chinese into words (so 数据迁移 inside
a sentence is two words, 数据 and 迁移, and a query for it finds the sentence) and keeps
Latin words whole; the ``.en`` sub-field adds English stop words and stemming (migrations
and migration meet). A query runs on both, so either language, or mixed text,
finds what it names. Both fold traditional Chinese characters into simplified ones, in
documents and queries alike, so 數據遷移 and 数据迁移 find each other.
"""

from __future__ import annotations

import unicodedata
from typing import Any, overload

from bloghub.adapters import traditional_chinese

ARTICLES = "search"
USERS = "user_search"


def alias_name(prefix: str, projector: str) -> str:
    return f"{prefix}-{projector}"


def index_name(prefix: str, projector: str, generation: int) -> str:
    return f"{alias_name(prefix, projector)}-g{generation}"


# Both analyzers segment with ICU, so a Chinese word is one token in either field (the
# standard tokenizer would cut it into single characters, and 线 alone would match 在线).
# An index keeps the analysis it was made with: one made before a change here follows it
# once rebuilt (``bloghub replay search``, ``bloghub replay user_search``).
_ANALYSIS: dict[str, Any] = {
    # Traditional characters become simplified ones before the text is segmented: ICU's
    # dictionary cuts some words differently by script (資料庫 is one word, 资料库 two), so
    # a transform after segmentation would leave the two spellings unmatched.
    "char_filter": {
        "traditional_simplified": {"type": "mapping", "mappings": traditional_chinese.mappings()}
    },
    "filter": {
        "english_stop": {"type": "stop", "stopwords": "_english_"},
        "english_stemmer": {"type": "stemmer", "language": "english"},
        "english_possessive": {"type": "stemmer", "language": "possessive_english"},
    },
    "analyzer": {
        "icu": {
            "type": "custom",
            "tokenizer": "icu_tokenizer",
            "char_filter": ["traditional_simplified"],
            "filter": ["cjk_width", "lowercase"],
        },
        "icu_english": {
            "type": "custom",
            "tokenizer": "icu_tokenizer",
            "char_filter": ["traditional_simplified"],
            "filter": [
                "cjk_width",
                "english_possessive",
                "lowercase",
                "english_stop",
                "english_stemmer",
            ],
        },
    },
}


@overload
def indexed(text: str) -> str: ...
@overload
def indexed(text: None) -> None: ...
def indexed(text: str | None) -> str | None:
    """Text as the index takes it: composed (NFC). Text typed or pasted decomposed (NFD:
    macOS and iOS keyboards, many pastes) was stored so, and no query found its accented
    Latin or Korean words, since the analyzers have no normalizer and the API composes
    every query. A change here needs `bloghub replay search user_search` for what is
    indexed already."""
    return None if text is None else unicodedata.normalize("NFC", text)


def _text() -> dict[str, Any]:
    return {
        "type": "text",
        "analyzer": "icu",
        "fields": {"en": {"type": "text", "analyzer": "icu_english"}},
    }


# A deleted document is forgotten (its version too, after index.gc_deletes): a late or
# replayed older write would bring it back. A withdrawn or deleted article is therefore
# kept as a document without text (a tombstone, ``state`` says which, its versions kept),
# so nothing older is applied to it for as long as the index lives. Nothing is ever
# deleted from this index, so ``index.gc_deletes`` plays no part in it.
ARTICLES_BODY: dict[str, Any] = {
    "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}, "analysis": _ANALYSIS},
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "id": {"type": "keyword"},
            "state": {"type": "keyword"},  # none | published | withdrawn | deleted
            "title": _text(),
            "content": _text(),
            "tags": {"type": "keyword", "fields": {"text": _text()}},
            "tag_keys": {"type": "keyword"},  # the tags as tag_key gives them: the filter's
            "author_id": {"type": "keyword"},
            "published_at": {"type": "date"},
            "v": {"type": "long", "index": False},  # the article version applied
        },
    },
}

# Fields added to the articles mapping since indexes were first made: put into an index
# that lacks them when a projector starts on it (its mapping is strict). Documents indexed
# before have them once replayed (`bloghub replay search`).
ARTICLE_PROPERTIES_ADDED: dict[str, Any] = {"tag_keys": {"type": "keyword"}}

USERS_BODY: dict[str, Any] = {
    "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}, "analysis": _ANALYSIS},
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "id": {"type": "keyword"},
            "nickname": _text(),
            "about": _text(),
            "erased": {"type": "boolean"},
            "lo": {"type": "long", "index": False},  # the users offset applied
        },
    },
}


# The version rule of article documents, run by OpenSearch on the document as it is when
# the write lands (an update is a get and a compare-and-set inside the shard, retried there
# on a conflict), so no write is ever based on an older read. The update carries the
# article's state at its own version ``v`` and replaces the stored state only if that is
# higher, so a re-delivery, a zombie instance or a replay, whose versions are at or below
# what the document holds, changes nothing (``ctx.op = 'none'``: not even OpenSearch's own
# version moves). Indexes made before counts left the documents still hold ``like_count``
# and ``lo``; nothing reads them.
ARTICLE_SCRIPT = """
def d = ctx._source;
if (d.id == null) {
  d.id = params.id; d.state = 'none'; d.v = 0;
}
def a = params.article;
if (a == null || a.v <= d.v) { ctx.op = 'none'; return; }
d.v = a.v;
d.state = a.state;
if (a.state == 'published') {
  d.title = a.title; d.content = a.content; d.tags = a.tags; d.tag_keys = a.tag_keys;
} else {
  d.remove('title'); d.remove('content'); d.remove('tags'); d.remove('tag_keys');
}
if (d.published_at == null && a.published_at != null) { d.published_at = a.published_at; }
d.author_id = params.author_id;
"""
