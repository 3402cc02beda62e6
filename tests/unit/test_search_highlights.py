"""Highlights: the words either analysis of a field matched, marked in the fragments shown."""

from __future__ import annotations

from bloghub.api.search_queries import highlights, marked

ABC = "\uff21\uff22\uff23"  # full width: a spaced script's word all the same


def test_the_stemmers_matches_are_marked_in_the_plain_fields_fragments() -> None:
    hit = {
        "highlight": {
            "title": ["<mark>Deploying</mark> services"],
            "content": ["We <mark>deployed</mark> it; deploying is easy."],
            "content.en": ["We <mark>deployed</mark> it; <mark>deploying</mark> is easy."],
        }
    }
    assert highlights(hit) == {
        "title": "<mark>Deploying</mark> services",
        "content": ["We <mark>deployed</mark> it; <mark>deploying</mark> is easy."],
    }


def test_a_field_only_the_stemmer_matched_is_shown_from_its_fragments() -> None:
    hit = {
        "highlight": {
            "title.en": ["<mark>Migrations</mark> done"],
            "content.en": ["two <mark>migrations</mark>, one migrating"],
        }
    }
    assert highlights(hit) == {
        "title": "<mark>Migrations</mark> done",
        "content": ["two <mark>migrations</mark>, one migrating"],
    }


def test_a_latin_word_is_not_marked_inside_a_longer_one_nor_inside_an_entity() -> None:
    hit = {
        "highlight": {
            "content": ["<mark>go</mark> &amp; going, Go, ago"],
            "content.en": ["<mark>amp</mark>"],
        }
    }
    assert highlights(hit)["content"] == ["<mark>go</mark> &amp; going, <mark>Go</mark>, ago"]


def test_chinese_words_are_marked_inside_sentences_and_side_by_side_marks_stay() -> None:
    hit = {
        "highlight": {
            "title": ["<mark>数据</mark><mark>迁移</mark>实践"],
            "content": ["我们完成了<mark>数据</mark>迁移"],
        }
    }
    assert highlights(hit) == {
        "title": "<mark>数据</mark><mark>迁移</mark>实践",
        "content": ["我们完成了<mark>数据</mark><mark>迁移</mark>"],
    }


def test_no_highlight_is_no_title_and_no_fragments() -> None:
    assert highlights({}) == {"title": None, "content": []}


def test_a_word_is_not_marked_inside_a_longer_one_in_any_spaced_script() -> None:
    hit = {
        "highlight": {
            "content": ["<mark>über</mark> alles; darüber hinaus. Überall"],
            "content.en": ["AT&amp;<mark>T</mark>, don&#x27;t stop"],
        }
    }
    assert highlights(hit)["content"] == ["<mark>über</mark> alles; darüber hinaus. Überall"]
    only = {"highlight": {"content": ["AT&amp;<mark>T</mark>, don&#x27;t, t&#x27;s"]}}
    assert highlights(only)["content"] == ["AT&amp;<mark>T</mark>, don&#x27;t, t&#x27;s"]


def test_a_quoted_word_is_marked_and_spaced_scripts_keep_to_whole_words() -> None:
    words = {"deploying", "apps", "한국", "भारत", ABC, "数据"}
    cases = {
        "we said &#x27;deploying&#x27; and <mark>apps</mark>": (
            "we said &#x27;<mark>deploying</mark>&#x27; and <mark>apps</mark>"
        ),
        "<mark>한국</mark> 사람은 한국어를": "<mark>한국</mark> 사람은 한국어를",
        "<mark>भारत</mark> और भारतीय": "<mark>भारत</mark> और भारतीय",
        f"<mark>{ABC}</mark> and {ABC}\uff24": f"<mark>{ABC}</mark> and {ABC}\uff24",
        "我们的数据迁移": "我们的<mark>数据</mark>迁移",
    }
    for fragment, expected in cases.items():
        assert marked(fragment, words) == expected, fragment
