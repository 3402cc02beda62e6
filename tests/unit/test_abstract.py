"""An article's abstract: its opening as a reader sees it, Markdown's marks gone where
Markdown reads them as marks and kept where they are text, cut between two characters a
reader sees (never within an emoji, a flag or an accented letter)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bloghub.api.article_queries import ABSTRACT_CHARS, abstract


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("# Intro\n\nSome *text*.", "Intro Some text."),
        # "#" and "*" within words and sums are text.
        (
            "# C#入门\n\n计算 2*3=6\uff0c详见[官方文档](https://docs.python.org/zh-cn/3/)。",
            "C#入门 计算 2*3=6\uff0c详见官方文档。",
        ),
        ("```python\nprint('你好')\n```\n\nrun `it`", "print('你好') run it"),
        (
            "> quoted\n\n- one\n- two\n1. first\n\n---\n\n![a cat](cat.png) **bold** _it_",
            "quoted one two first a cat bold it",
        ),
        ("snake_case_name and a_b", "snake_case_name and a_b"),
        ("## Closed heading ##\ntext", "Closed heading text"),
        ("[![build](https://ci/badge.svg)](https://ci/run) ok", "build ok"),
        ("Use \\*not emphasis\\* and \\# not a heading", "Use *not emphasis* and # not a heading"),
        # What comes after a long run of blank lines or a long address is still read.
        ("\n" * 1700 + "Hello after blank lines", "Hello after blank lines"),
        ("[click](https://example.com/" + "x" * 1700 + ") then words", "click then words"),
    ],
)
def test_markdown_marks_go_and_text_stays(body: str, shown: str) -> None:
    assert abstract(body) == shown


CLUSTERS = [
    "👨\u200d👩\u200d👧\u200d👦",
    "🇨🇳",
    "👍🏽",
    "e\u0301",
    "한",
    "\u1112\u1161\u11ab",
    "❤\ufe0f",
    # Clusters of no combining mark: a Thai and a Lao vowel sign (SARA AM, a letter to
    # Unicode's categories) with their consonant, a Devanagari conjunct (KSSA), a keycap,
    # a subdivision flag.
    "\u0e01\u0e33",
    "\u0e81\u0eb3",
    "\u0915\u094d\u0937",
    "1\ufe0f\u20e3",
    "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
]


@given(st.integers(min_value=150, max_value=220), st.sampled_from(CLUSTERS))
def test_the_cut_never_splits_what_a_reader_sees_as_one_character(lead: int, cluster: str) -> None:
    body = "字" * lead + cluster * 80
    shown = abstract(body)
    assert shown.endswith("…")
    kept = shown[:-1]
    assert len(shown) <= ABSTRACT_CHARS
    # What is kept is the lead and whole clusters.
    rest = kept[lead:] if len(kept) > lead else ""
    assert kept[: min(lead, len(kept))] == "字" * min(lead, len(kept))
    assert rest == cluster * (len(rest) // len(cluster)), (lead, cluster, rest)


def test_an_opening_read_in_part_is_still_cut_with_an_ellipsis() -> None:
    body = (
        "[click](https://example.com/"
        + "x" * 1500
        + ") "
        + " ".join(f"word{i}" for i in range(400))
    )
    shown = abstract(body)
    assert shown.startswith("click word0 word1")
    assert shown.endswith("…")
    assert len(shown) <= ABSTRACT_CHARS


def test_a_short_body_is_whole_and_a_long_one_is_cut() -> None:
    assert abstract("a  b\n\nc") == "a b c"
    long = abstract("word " * 100)
    assert long.endswith("…")
    assert len(long) <= ABSTRACT_CHARS
    assert unicodedata.is_normalized("NFC", long)
