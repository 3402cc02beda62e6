"""Highlights: the words either analysis of a field matched, marked in the fragments shown."""

from __future__ import annotations

from bloghub.api.search_fragments import clipped, on_whole_clusters
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


FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
THUMB = "\U0001f44d\U0001f3fd"


def test_a_fragment_cut_within_an_emoji_shows_whole_ones() -> None:
    """As OpenSearch cut them: the end of a family, the start of one, a skin tone."""
    source = "醒目词" + FAMILY * 30
    cut = "<mark>醒目</mark><mark>词</mark>" + FAMILY * 14 + "\U0001f468\u200d\U0001f469\u200d"
    hit = {"_source": {"content": source}, "highlight": {"content": [cut]}}
    assert highlights(hit)["content"] == ["<mark>醒目</mark><mark>词</mark>" + FAMILY * 14]
    source = FAMILY * 100 + "醒目词" + FAMILY * 100
    cut = "\U0001f469\u200d\U0001f467\u200d\U0001f466" + FAMILY * 14 + "<mark>醒目</mark>"
    hit = {"_source": {"content": source}, "highlight": {"content": [cut]}}
    assert highlights(hit)["content"] == [FAMILY * 14 + "<mark>醒目</mark>"]
    flag = "\U0001f1e8\U0001f1f3"
    source = "醒目词" + (flag + THUMB) * 80
    cut = "<mark>醒目词</mark>" + (flag + THUMB) * 20 + flag + "\U0001f44d"
    hit = {"_source": {"content": source}, "highlight": {"content": [cut]}}
    assert highlights(hit)["content"] == ["<mark>醒目词</mark>" + (flag + THUMB) * 20 + flag]


def test_a_cut_character_that_is_marked_is_completed_and_escapes_stay() -> None:
    source = "a/b " + THUMB + " '\u0301 <c>"
    # The marked thumb lost its skin tone: it gets it back, marked with it.
    cut = "a&#x2F;b <mark>\U0001f44d</mark>"
    assert on_whole_clusters(cut, source) == "a&#x2F;b <mark>\U0001f44d\U0001f3fd</mark>"
    # An accent without its apostrophe: dropped, or completed (escaped) where it is marked.
    assert on_whole_clusters("\u0301 &lt;c&gt;", source) == " &lt;c&gt;"
    marked_accent = "<mark>\u0301</mark> &lt;c"
    assert on_whole_clusters(marked_accent, source) == "<mark>&#x27;\u0301</mark> &lt;c"
    # Wholly within one character: completed.
    assert on_whole_clusters("\u200d\U0001f469", FAMILY) == FAMILY
    # Not found in the text (an older document's): as it came.
    assert on_whole_clusters("<mark>zz</mark>", source) == "<mark>zz</mark>"


def test_a_mark_ending_within_a_character_marks_all_of_it() -> None:
    """OpenSearch marked the first person of a family joined by zero-width joiners: the
    mark closed within the family, which the edge then completed unmarked."""
    source = "q" * 20 + FAMILY + " after"
    cut = "qqq<mark>\U0001f468\u200d</mark>"
    assert on_whole_clusters(cut, source) == f"qqq<mark>{FAMILY}</mark>"
    inside = f"qqq<mark>\U0001f468\u200d\U0001f469</mark>{FAMILY[3:]} after"
    assert on_whole_clusters(inside, source) == f"qqq<mark>{FAMILY}</mark> after"
    # Marks of their own stay apart; one that starts within a character starts before it.
    apart = f"<mark>q</mark><mark>q</mark>{FAMILY[:2]}<mark>{FAMILY[2:]}</mark> after"
    assert (
        on_whole_clusters(apart, source)
        == f"<mark>q</mark><mark>q</mark><mark>{FAMILY}</mark> after"
    )


def test_a_passage_only_the_stemmer_matched_is_shown_beside_the_plain_one() -> None:
    """ "deployed hl83bc5": the plain analysis matched the code name in one sentence, the
    stemmer "deploying" in another; both are shown, in the order of the text."""
    text = "We were deploying the new build on Monday. Then hl83bc5 broke in production."
    hit = {
        "_source": {"title": "Release notes hl83bc5", "content": text},
        "highlight": {
            "title": ["Release notes <mark>hl83bc5</mark>"],
            "content": ["Then <mark>hl83bc5</mark> broke in production."],
            "content.en": [
                "We were <mark>deploying</mark> the new build on Monday.",
                "Then <mark>hl83bc5</mark> broke in production.",
            ],
        },
    }
    assert highlights(hit)["content"] == [
        "We were <mark>deploying</mark> the new build on Monday.",
        "Then <mark>hl83bc5</mark> broke in production.",
    ]


def test_a_token_cut_within_an_emoji_marks_nothing_in_the_title() -> None:
    """The content's fragment marks the first two people of a family of four (a token of
    the analyzer); the title's family of three holds them, and is not marked for it."""
    four = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    three = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    cut = "<mark>\U0001f468\u200d\U0001f469</mark>\u200d\U0001f467\u200d\U0001f466"
    title = f"Emoji {three} family 8100"
    hit = {
        "_source": {"title": title, "content": f"\u5bb6\u5ead{four}\u540e\u6765 8100"},
        "highlight": {
            "title": [f"Emoji {three} family <mark>8100</mark>"],
            "content": [f"\u5bb6\u5ead{cut}\u540e\u6765 <mark>8100</mark>"],
        },
    }
    shown = highlights(hit)
    assert shown["title"] == f"Emoji {three} family <mark>8100</mark>"
    assert shown["content"] == [f"\u5bb6\u5ead<mark>{four}</mark>\u540e\u6765 <mark>8100</mark>"]


def test_a_fragment_within_the_bound_is_kept_as_it_is() -> None:
    fragment = "a few words and a <mark>match</mark> &amp; more"
    assert clipped(fragment, 320, 80) == fragment


def test_a_long_fragment_is_clipped_to_a_passage_around_its_first_mark() -> None:
    fragment = "x" * 1000 + "<mark>match</mark>" + "y" * 1000 + "<mark>match</mark>"
    assert clipped(fragment, 40, 10) == "x" * 10 + "<mark>match</mark>" + "y" * 25


def test_a_mark_cut_at_the_end_is_closed_and_one_at_the_start_kept() -> None:
    assert clipped("<mark>" + "m" * 50 + "</mark>" + "z" * 50, 20, 10) == (
        "<mark>" + "m" * 20 + "</mark>"
    )


def test_an_entity_counts_as_the_one_character_it_stands_for() -> None:
    fragment = "&amp;" * 100 + "<mark>x</mark>" + "&lt;" * 100
    assert clipped(fragment, 11, 5) == "&amp;" * 5 + "<mark>x</mark>" + "&lt;" * 5


def test_a_fragment_without_a_mark_is_clipped_from_its_start() -> None:
    assert clipped("abc" * 100, 7, 3) == "abcabca"


def test_a_mark_near_the_end_keeps_the_passage_full_length() -> None:
    fragment = "a" * 100 + "<mark>b</mark>"
    assert clipped(fragment, 20, 5) == "a" * 19 + "<mark>b</mark>"
