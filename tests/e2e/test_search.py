"""Search end to end: Chinese and English text, tags, withdrawn and deleted articles,
highlights, paging, users, and whatever a caller types."""

from __future__ import annotations

import asyncio
import html
import json
import secrets
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from bloghub.adapters.search_indexes import ARTICLES, USERS, index_name
from bloghub.api.search_queries import CursorSeal
from tests.conftest import LiveServer
from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_articles import Author, draft
from tests.e2e.test_erasure import erase
from tests.e2e.test_no_server_errors import FUZZ
from tests.e2e.test_sessions import account, bearer, login
from tests.support import wait_until


@pytest.fixture
async def author(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    tokens = await login(client, await account(client, unique_email))
    return Author(tokens["user"]["id"], bearer(tokens["access_token"]))


@pytest.fixture
async def other(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    return await author.__wrapped__(client, unique_email)  # type: ignore[attr-defined,no-any-return]


async def publish(client: httpx.AsyncClient, who: Author, **fields: object) -> str:
    article_id, _ = await publish_at(client, who, **fields)
    return article_id


async def publish_at(
    client: httpx.AsyncClient, who: Author, **fields: object
) -> tuple[str, dict[str, str]]:
    """A published article's id, and the header with which another reader waits for it."""
    article_id = await draft(client, who, **fields)
    done = await client.post(f"/v1/articles/{article_id}/publish", headers=who.auth)
    assert done.status_code == 200, done.text
    return article_id, {"bloghub-after": done.headers["bloghub-position"]}


async def search(
    client: httpx.AsyncClient, who: Author | None = None, **params: str | int
) -> dict[str, Any]:
    answer = await client.get("/v1/search/articles", params=params, headers=who.auth if who else {})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def ids(found: dict[str, Any]) -> list[str]:
    return [a["id"] for a in found["articles"]]


def word() -> str:
    """A word no other test's article holds (letters only, so analyzers keep it whole)."""
    return "w" + "".join(secrets.choice("bcdfghjklmnpqrstvz") for _ in range(10))


async def test_the_author_finds_a_chinese_article_by_a_word_inside_a_sentence(
    client: httpx.AsyncClient, author: Author
) -> None:
    tag = word()
    content = "我们今天讨论数据迁移的问题以及如何在不停机的情况下完成它。"
    article_id = await publish(client, author, title="系统升级笔记", content=content, tags=[tag])
    # The author's own search sees the publish at once (read-your-writes).
    found = await search(client, author, q="数据迁移", tag=tag)
    assert ids(found) == [article_id]
    assert found["total"] == 1
    hit = found["articles"][0]
    assert hit["title"] == "系统升级笔记"
    assert hit["author"]["id"] == author.id
    assert any("<mark>" in f for f in hit["highlights"]["content"])
    assert ids(await search(client, author, q="升级", tag=tag)) == [article_id]


async def test_traditional_and_simplified_chinese_find_each_other(
    client: httpx.AsyncClient, author: Author
) -> None:
    """A reader writing traditional characters finds an article written in simplified
    ones, and the other way round; the hit shows the article as written."""
    tag = word()
    simplified = await publish(
        client, author, title="数据迁移笔记", content="在不停机的情况下完成数据库迁移。", tags=[tag]
    )
    traditional = await publish(
        client, author, title="臺灣的資料庫", content="我們討論資料庫與網路。", tags=[tag]
    )
    assert ids(await search(client, author, q="數據遷移", tag=tag)) == [simplified]
    assert ids(await search(client, author, q="数据迁移", tag=tag)) == [simplified]
    found = await search(client, author, q="台湾 资料库", tag=tag)
    assert ids(found) == [traditional]
    assert found["articles"][0]["title"] == "臺灣的資料庫"
    # Marked where the query's words are, in the script the author wrote.
    assert "<mark>臺灣</mark>" in found["articles"][0]["highlights"]["title"]
    assert ids(await search(client, author, q="網路", tag=tag)) == [traditional]
    assert ids(await search(client, author, q="网路", tag=tag)) == [traditional]
    # A nickname in either script is found by the other.
    patch = {"nickname": f"資料庫 {tag}"}
    assert (await client.patch("/v1/users/me", json=patch, headers=author.auth)).status_code == 200
    users = await client.get("/v1/search/users", params={"q": f"资料库 {tag}"}, headers=author.auth)
    assert [u["id"] for u in users.json()["users"]] == [author.id]


async def test_a_persian_word_spelled_with_a_non_joiner_is_written_and_found(
    client: httpx.AsyncClient, author: Author
) -> None:
    """Persian writes many words with a zero-width non-joiner (U+200C) between two letters:
    "books" is kitab + ZWNJ + ha. A title, a tag and a query may hold it."""
    tag, books = word(), "\u06a9\u062a\u0627\u0628\u200c\u0647\u0627"
    article_id = await publish(
        client, author, title=f"{books} {tag}", content="text", tags=[tag, books]
    )
    found = await search(client, author, q=books, tag=tag)
    assert ids(found) == [article_id]
    assert books in found["articles"][0]["tags"]
    # The character alone still shows nothing: not a title, a tag or a query.
    blank = {"title": "\u200c", "content": "x", "tags": []}
    assert (await client.post("/v1/articles", json=blank, headers=author.auth)).status_code == 422
    alone = await client.get("/v1/search/articles", params={"q": "\u200c"}, headers=author.auth)
    assert alone.status_code == 422


async def test_a_tag_filter_finds_the_tag_in_any_case(
    client: httpx.AsyncClient, author: Author
) -> None:
    tag = word()
    article_id = await publish(client, author, title="Cased tags", content="x", tags=[tag.title()])
    for spelling in (tag, tag.upper(), tag.title()):
        assert ids(await search(client, author, q="cased", tag=spelling)) == [article_id], spelling


async def test_a_tag_filter_finds_a_tag_of_any_script_as_the_tag_lists_show_it(
    client: httpx.AsyncClient, author: Author
) -> None:
    """Cyrillic, Greek and accented capitals: the tag lists show each lower-cased, and the
    filter finds it so (OpenSearch ignores only ASCII case by itself)."""
    w = word()
    tags = [f"Питон{w}", f"École{w}", f"ΣΑΣ{w}"]
    article_id = await publish(client, author, title=f"{w} scripts", content="x", tags=tags)
    for tag in tags:
        for spelling in (tag, tag.lower(), tag.upper()):  # lower: as the lists show it
            found = ids(await search(client, author, q=w, tag=spelling))
            assert found == [article_id], spelling


async def test_english_stemming_finds_other_forms(
    client: httpx.AsyncClient, author: Author
) -> None:
    tag = word()
    article_id = await publish(
        client, author, title="Running database migrations", content="Plan them.", tags=[tag]
    )
    assert ids(await search(client, author, q="migration", tag=tag)) == [article_id]
    assert ids(await search(client, author, q="run", tag=tag)) == [article_id]


async def test_either_language_finds_mixed_text(client: httpx.AsyncClient, author: Author) -> None:
    tag = word()
    article_id = await publish(
        client, author, title="用 PostgreSQL 做在线 schema migrations", content="", tags=[tag]
    )
    for q in ("在线", "migration", "postgresql 在线", "PostgreSQL migrations"):
        assert ids(await search(client, author, q=q, tag=tag)) == [article_id], q
    assert ids(await search(client, author, q="备份 migration", tag=tag)) == []


async def test_the_tag_filter_is_whole_tags_in_any_case(
    client: httpx.AsyncClient, author: Author
) -> None:
    marker = word()
    go = await publish(client, author, title=f"{marker} one", tags=["Go"])
    golang = await publish(client, author, title=f"{marker} two", tags=["golang"])
    assert ids(await search(client, author, q=marker, tag="Go")) == [go]
    assert ids(await search(client, author, q=marker, tag="golang")) == [golang]
    assert ids(await search(client, author, q=marker, tag="go")) == [go]
    assert ids(await search(client, author, q=marker, tag="gol")) == []
    assert set(ids(await search(client, author, q=marker))) == {go, golang}


async def test_a_hit_counts_each_liker_once_as_the_article_does(
    client: httpx.AsyncClient, author: Author, other: Author
) -> None:
    """A reader who likes again (and again after an unlike) is one like: the hit shows the
    interactions' count, the number the article itself shows, and the liker sees it at once."""
    tag = word()
    article_id, published = await publish_at(client, author, title=f"{tag} liked", tags=[tag])
    like = f"/v1/articles/{article_id}/like"
    # The other reader names the author's position (a reader waits for its own writes alone).
    for method in ("PUT", "PUT", "DELETE", "PUT"):
        done = await client.request(method, like, headers={**other.auth, **published})
        assert done.status_code == 200, done.text
    done = await client.put(like, headers=author.auth)
    assert done.status_code == 200, done.text

    hits = (await search(client, author, q=tag))["articles"]
    assert [(h["id"], h["like_cnt"], h["liked"]) for h in hits] == [(article_id, 2, True)]
    shown = await client.get(f"/v1/articles/{article_id}", headers=author.auth)
    assert shown.json()["article"]["like_cnt"] == 2
    for _ in range(3):  # likes recorded again change neither
        assert (await client.put(like, headers=other.auth)).status_code == 200
    hits = (await search(client, other, q=tag))["articles"]
    assert [(h["like_cnt"], h["liked"], h["collected"]) for h in hits] == [(2, True, False)]
    anonymous = (await search(client, q=tag))["articles"]
    assert [(h["like_cnt"], h["liked"]) for h in anonymous] == [(2, None)]
    # And its comments, as listings count them: the commenter sees their own at once.
    said = await client.post(
        f"/v1/articles/{article_id}/comments", json={"content": "nice"}, headers=other.auth
    )
    assert said.status_code == 201, said.text
    hits = (await search(client, other, q=tag))["articles"]
    assert [h["comment_cnt"] for h in hits] == [1]


async def test_withdrawn_and_deleted_articles_are_never_found(
    client: httpx.AsyncClient, author: Author
) -> None:
    marker = word()
    kept = await publish(client, author, title=f"{marker} kept")
    withdrawn = await publish(client, author, title=f"{marker} withdrawn")
    deleted = await publish(client, author, title=f"{marker} deleted")
    assert set(ids(await search(client, author, q=marker))) == {kept, withdrawn, deleted}
    answer = await client.post(f"/v1/articles/{withdrawn}/withdraw", headers=author.auth)
    assert answer.status_code == 200
    assert (await client.delete(f"/v1/articles/{deleted}", headers=author.auth)).status_code == 204
    assert ids(await search(client, author, q=marker)) == [kept]
    # Published again, the withdrawn article is found again.
    again = await client.post(f"/v1/articles/{withdrawn}/publish", headers=author.auth)
    assert again.status_code == 200
    assert set(ids(await search(client, author, q=marker))) == {kept, withdrawn}


async def first_hit(
    client: httpx.AsyncClient, author: Author, q: str, **fields: object
) -> dict[str, Any]:
    """The first hit for ``q`` once the author has published an article of ``fields``."""
    await publish(client, author, **fields)
    hit: dict[str, Any] = (await search(client, author, q=q))["articles"][0]
    return hit


async def test_highlights_are_escaped_text_with_marks_only(
    client: httpx.AsyncClient, author: Author
) -> None:
    marker = word()
    content = f'<script>alert("x")</script> {marker} <b onclick="steal()">bold</b>'
    hit = await first_hit(client, author, marker, title=f"<i>{marker}</i>", content=content)
    fragments = [hit["highlights"]["title"], *hit["highlights"]["content"]]
    for fragment in fragments:
        stripped = fragment.replace("<mark>", "").replace("</mark>", "")
        assert "<" not in stripped, fragment
        assert ">" not in stripped, fragment
    assert f"<mark>{marker}</mark>" in hit["highlights"]["title"]
    assert "&lt;script&gt;" in "".join(hit["highlights"]["content"])


FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"


def clusters_of(text: str) -> set[int]:
    """Where a character as a reader sees it starts or ends in ``text``."""
    return {0, *(m.end() for m in regex.finditer(r"\X", text))}


@pytest.mark.parametrize(
    "content",
    [
        "醒目词" + FAMILY * 30,
        FAMILY * 100 + "醒目词" + FAMILY * 100,
        "醒目词" + "\U0001f1e8\U0001f1f3\U0001f44d\U0001f3fd" * 80,
        # Marks on a letter with no composed form, and Thai vowel signs: escaped text too.
        "x\u0301" * 100 + "<a href='/x'>醒目词" + "\u0e01\u0e33" * 100,
    ],
)
async def test_highlights_start_and_end_between_whole_characters(
    client: httpx.AsyncClient, author: Author, content: str
) -> None:
    """A run of emoji has no word break where a fragment's size runs out: the fragments
    shown neither end in half a family (a man, a joiner, a woman, a joiner), a thumb
    without its skin tone or half a flag, nor start with a family's second person."""
    await publish(client, author, title="whole", content=content)
    found = await search(client, author, q="醒目词", author=author.id)
    fragments = found["articles"][0]["highlights"]["content"]
    assert fragments
    whole = clusters_of(content)
    for fragment in fragments:
        assert "<mark>醒目</mark><mark>词</mark>" in fragment
        escaped = fragment.replace("<mark>", "").replace("</mark>", "")
        assert not set("<>'\"") & set(escaped), fragment
        text = html.unescape(escaped)
        start = content.find(text)
        assert start >= 0, fragment
        assert start in whole, fragment
        assert start + len(text) in whole, fragment


@pytest.mark.parametrize(
    ("content", "q"),
    [
        # A hash dump: no word break for 40,000 characters after the word.
        ("flamingo{marker} " + "0123456789abcdef" * 2500, "flamingo{marker}"),
        # Chinese without punctuation around the word.
        ("\u6570" * 15000 + "{marker}" + "\u636e" * 15000, "{marker}"),
    ],
)
async def test_a_highlight_is_a_passage_even_where_no_word_break_comes(
    client: httpx.AsyncClient, author: Author, content: str, q: str
) -> None:
    """OpenSearch cuts a fragment only at a word break: around a long run without one, it
    gave the whole run, tens of kilobytes for each hit of every search that found it."""
    marker = word()
    text = content.format(marker=marker)
    await publish(client, author, title="run", content=text)
    found = await search(client, author, q=q.format(marker=marker), author=author.id)
    fragments = found["articles"][0]["highlights"]["content"]
    assert fragments
    for fragment in fragments:
        plain = html.unescape(fragment.replace("<mark>", "").replace("</mark>", ""))
        assert len(plain) <= 320, len(plain)
        assert plain in text
    assert any(marker in f and "<mark>" in f for f in fragments), fragments


async def test_highlights_mark_each_form_the_stemmer_matched_beside_the_exact_one(
    client: httpx.AsyncClient, author: Author
) -> None:
    marker = word()
    content = f"We deployed {marker} twice; deploying is easy."
    title = f"Deploying {marker}"
    hit = await first_hit(client, author, f"deployed {marker}", title=title, content=content)
    assert hit["highlights"]["title"] == f"<mark>Deploying</mark> <mark>{marker}</mark>"
    assert hit["highlights"]["content"] == [
        f"We <mark>deployed</mark> <mark>{marker}</mark> twice; <mark>deploying</mark> is easy."
    ]


async def test_words_are_found_wherever_in_the_article_they_are(
    client: httpx.AsyncClient, author: Author
) -> None:
    """Two words of one article find it whether they share a field or not (one in the
    title and one in the text, or one its tag); an article with only one of them is not
    found."""
    x, y, t = word(), word(), word()
    split = await publish(client, author, title=f"Notes on {x}", content=f"All about {y} today.")
    tagged = await publish(client, author, title=f"Tutorial {y}", content="body", tags=[t])
    await publish(client, author, title=f"{x} alone", content="nothing else")
    assert ids(await search(client, author, q=f"{x} {y}")) == [split]
    assert ids(await search(client, author, q=f"{t} {y}")) == [tagged]
    assert ids(await search(client, author, q=f"{y} {t}")) == [tagged]
    # Chinese words, one in the title and one in the text.
    tag = word()
    content = "我们今天讨论数据迁移的问题。"
    chinese = await publish(client, author, title="系统升级笔记", content=content, tags=[tag])
    assert ids(await search(client, author, q="升级 数据迁移", tag=tag)) == [chinese]
    assert ids(await search(client, author, q="升级 备份", tag=tag)) == []


async def test_a_user_is_found_by_words_of_nickname_and_about_together(
    client: httpx.AsyncClient, author: Author
) -> None:
    a, b = word(), word()
    patch = {"nickname": f"小明 {a}", "about_me": f"喜欢 {b} 和数据库"}
    assert (await client.patch("/v1/users/me", json=patch, headers=author.auth)).status_code == 200
    found = await client.get("/v1/search/users", params={"q": f"{a} {b}"}, headers=author.auth)
    assert found.status_code == 200, found.text
    assert [u["id"] for u in found.json()["users"]] == [author.id]


async def test_decomposed_text_is_found_by_its_words(
    client: httpx.AsyncClient, author: Author
) -> None:
    """Text typed or pasted decomposed (NFD: macOS and iOS keyboards) is found by the same
    words composed, as every query is: accented Latin and Korean were never found."""
    marker = word()
    nfd = unicodedata.normalize("NFD", "crème brûlée 한국어 검색")
    assert nfd != unicodedata.normalize("NFC", nfd)
    article = await publish(client, author, title=marker, content=f"{marker} {nfd}")
    for q in ("crème", "brûlée", "검색"):
        assert ids(await search(client, author, q=f"{marker} {q}")) == [article], q
    patch = {"nickname": marker, "about_me": nfd}
    assert (await client.patch("/v1/users/me", json=patch, headers=author.auth)).status_code == 200
    found = await client.get("/v1/search/users", params={"q": "brûlée"}, headers=author.auth)
    assert author.id in [u["id"] for u in found.json()["users"]], found.text


async def test_pages_follow_each_other_and_the_total_counts_all(
    client: httpx.AsyncClient, author: Author
) -> None:
    marker = word()
    made = {await publish(client, author, title=f"{marker} {i}") for i in range(5)}
    first = await search(client, author, q=marker, limit=2)
    assert first["total"] == 5
    seen = ids(first)
    cursor = first["next_cursor"]
    while cursor is not None:
        page = await search(client, author, q=marker, limit=2, cursor=cursor)
        seen += ids(page)
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(made)


async def test_pages_skip_and_repeat_nothing_while_others_publish(
    client: httpx.AsyncClient, author: Author, other: Author
) -> None:
    """Between two pages others publish (changing every word's statistics, so every
    score): the pages still list each article once."""
    w, filler = word(), word()
    made = []
    for reps, pad in ((3, 1), (2, 2), (1, 3)):
        content = " ".join([w] * reps + ["padding"] * pad)
        made.append(await publish(client, author, title="paging", content=content))
    first = await search(client, author, q=w, limit=1)
    assert first["total"] == 3
    seen = ids(first)
    for i in range(30):
        await publish(client, other, title=f"{filler} {i}", content=f"{filler} stuff {i}")

    async def indexed() -> bool:
        return bool((await search(client, q=filler))["total"] == 30)

    await wait_until(indexed, timeout_s=60)
    cursor = first["next_cursor"]
    while cursor is not None:
        page = await search(client, q=w, limit=1, cursor=cursor)
        assert page["total"] == 3
        seen += ids(page)
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(made)


async def test_later_pages_show_articles_as_they_are_now(
    client: httpx.AsyncClient, author: Author
) -> None:
    """A later page reads the view of its first (nothing skipped or repeated), but an
    article withdrawn or deleted since is not shown from it, nor the text an edit took
    out: the view kept them readable for as long as its pages went on."""
    w = word()
    made = [
        await publish(client, author, title=f"{w} {i}", content=f"{w} secret {i}") for i in range(6)
    ]
    first = await search(client, author, q=w, limit=2)
    assert first["total"] == 6
    later = [a for a in made if a not in ids(first)]
    withdrawn, deleted, edited = later[0], later[1], later[2]
    assert (await client.post(f"/v1/articles/{withdrawn}/withdraw", headers=author.auth)).is_success
    assert (await client.delete(f"/v1/articles/{deleted}", headers=author.auth)).is_success
    edit = await client.put(
        f"/v1/articles/{edited}", json={"title": f"{w} renamed", "content": w}, headers=author.auth
    )
    assert edit.status_code == 200, edit.text
    republished = await client.post(f"/v1/articles/{edited}/publish", headers=author.auth)
    assert republished.status_code == 200, republished.text
    # Published since the first page: not in its view, so neither listed nor counted.
    await publish(client, author, title=f"{w} new", content=f"{w} secret")
    seen: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    cursor = first["next_cursor"]
    while cursor is not None:
        page = await search(client, author, q=w, limit=2, cursor=cursor)
        pages.append(page)
        seen += page["articles"]
        cursor = page["next_cursor"]
    assert sorted(a["id"] for a in seen) == sorted(set(later) - {withdrawn, deleted})
    # The page is filled from the view in place of what is no longer shown, no empty page
    # follows a cursor, and the total counts what the pages list: what the view holds
    # and matches now.
    assert [len(p["articles"]) for p in pages] == [2]
    assert [p["total"] for p in pages] == [4]
    renamed = next(a for a in seen if a["id"] == edited)
    assert renamed["title"] == f"{w} renamed"
    assert "secret" not in str(renamed["highlights"])


async def test_a_later_page_leaves_out_an_article_edited_so_it_no_longer_matches(
    client: httpx.AsyncClient, author: Author
) -> None:
    """Its view still matched the old text: the article was listed for words and a tag it
    no longer had, and the pages listed more than their total (it is left out now, as a
    withdrawn one is, and the page filled in its stead)."""
    w, tag = word(), word()
    made = [
        await publish(client, author, title=f"{w} {i}", content=w, tags=[tag]) for i in range(5)
    ]
    first = await search(client, author, q=w, tag=tag, limit=2)
    later = [a for a in made if a not in ids(first)]
    gone, kept = later[0], later[1]
    for article, change in (
        (gone, {"title": "Elsewhere", "content": "other", "tags": ["x"]}),
        (kept, {"title": f"{w} still", "content": w, "tags": [tag]}),
    ):
        edit = await client.put(f"/v1/articles/{article}", json=change, headers=author.auth)
        assert edit.status_code == 200, edit.text
        again = await client.post(f"/v1/articles/{article}/publish", headers=author.auth)
        assert again.status_code == 200, again.text
    seen, cursor = [], first["next_cursor"]
    while cursor is not None:
        page = await search(client, author, q=w, tag=tag, limit=2, cursor=cursor)
        assert len(page["articles"]) <= page["total"], page
        seen += page["articles"]
        cursor = page["next_cursor"]
    assert sorted(a["id"] for a in seen) == sorted(set(later) - {gone})
    assert next(a for a in seen if a["id"] == kept)["title"] == f"{w} still"


async def test_a_later_page_is_filled_past_a_long_run_of_withdrawn_articles(
    client: httpx.AsyncClient, author: Author
) -> None:
    """Twelve withdrawn after a page of two: the next page was empty, with a cursor to the
    articles still behind them (a client stopping at an empty page lost them)."""
    w = word()
    made = [await publish(client, author, title=f"{w} {i}", content=w) for i in range(16)]
    first = await search(client, author, q=w, limit=2)
    order = ids(await search(client, author, q=w, limit=50))
    later = [a for a in order if a not in ids(first)]
    for article in later[:12]:
        withdrawn = await client.post(f"/v1/articles/{article}/withdraw", headers=author.auth)
        assert withdrawn.is_success, withdrawn.text
    page = await search(client, author, q=w, limit=2, cursor=first["next_cursor"])
    assert ids(page) == later[12:14]
    assert sorted(made) == sorted(order)


async def test_a_cursor_past_its_two_minutes_is_expired_though_its_view_lingers(
    client: httpx.AsyncClient, author: Author, live_api: LiveServer
) -> None:
    """The cluster closes expired views at its next sweep, so a cursor kept working up to
    a minute past its documented 2 minutes; it carries its own time now."""
    marker = word()
    for i in range(3):
        await publish(client, author, title=f"{marker} {i}")
    first = await search(client, author, q=marker, limit=1)
    seal = CursorSeal(live_api.container.settings.position_secret.get_secret_value())
    taken = seal.open(first["next_cursor"])
    old = seal.seal(replace(taken, issued_ms=taken.issued_ms - 121_000))
    answer = await client.get(
        "/v1/search/articles", params={"q": marker, "limit": 1, "cursor": old}
    )
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "cursor_expired"
    fresh = await search(client, author, q=marker, limit=1, cursor=first["next_cursor"])
    assert len(fresh["articles"]) == 1


async def test_a_cursor_pages_its_own_search_only(
    client: httpx.AsyncClient, author: Author
) -> None:
    """A cursor's view keeps the index as its first page found it: other words sent with
    it would find text its author has since removed. Such a cursor is refused (404),
    with other words, another tag or another author alike; its own search pages on."""
    w, removed = word(), word()
    await publish(client, author, title=f"{w} one", content=w)
    edited = await publish(client, author, title=f"{w} two", content=f"{w} {removed}")
    await publish(client, author, title=f"{w} three", content=w)
    first = await search(client, author, q=w, limit=1)
    cursor = first["next_cursor"]
    edit = await client.put(
        f"/v1/articles/{edited}", json={"title": f"{w} two", "content": w}, headers=author.auth
    )
    assert edit.status_code == 200, edit.text
    republished = await client.post(f"/v1/articles/{edited}/publish", headers=author.auth)
    assert republished.status_code == 200, republished.text
    assert (await search(client, author, q=removed))["total"] == 0
    for other in ({"q": removed}, {"q": w, "tag": "other"}, {"q": w, "author": author.id}):
        answer = await client.get(
            "/v1/search/articles", params={"limit": 1, "cursor": cursor, **other}
        )
        assert answer.status_code == 404, answer.text
        assert "another search" in answer.json()["error"]["message"]
    page = await search(client, author, q=w, limit=1, cursor=cursor)
    assert len(page["articles"]) == 1


async def test_a_cursor_whose_results_were_let_go_says_so(
    client: httpx.AsyncClient, author: Author, live_api: LiveServer
) -> None:
    """The pages of a search are held for a while after each page; a cursor past that is a
    404 telling the caller to search again, never a 5xx or a page of another search."""
    marker = word()
    for i in range(3):
        await publish(client, author, title=f"{marker} {i}")
    first = await search(client, author, q=marker, limit=1)
    c = live_api.container
    view = CursorSeal(c.settings.position_secret.get_secret_value()).open(first["next_cursor"]).view
    assert view is not None
    await c.search.delete_pit(body={"pit_id": [view]})  # as its keep-alive running out does
    answer = await client.get(
        "/v1/search/articles", params={"q": marker, "limit": 1, "cursor": first["next_cursor"]}
    )
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "cursor_expired"
    again = await search(client, q=marker, limit=1)
    assert again["total"] == 3
    assert again["next_cursor"] is not None


async def test_bad_parameters_are_422(client: httpx.AsyncClient) -> None:
    cases: list[dict[str, str | int]] = [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 201},
        {"q": "x", "limit": 0},
        {"q": "x", "author": "not-a-uuid"},
        # A filter takes a tag as listed: up to 576, 32 characters of the longest fold.
        {"q": "x", "tag": "a" * 577},
        {"q": "x", "tag": "\ufdfa" * 33},  # within 576 as sent, 594 once folded
    ]
    for params in cases:
        answer = await client.get("/v1/search/articles", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.json()["error"]["code"] == "invalid_input"
    assert (await client.get("/v1/search/users", params={"q": ""})).status_code == 422
    # A cursor of the right form that was never handed out names no page.
    strange = {"q": "x", "cursor": "bm90LWEtY3Vyc29y"}
    assert (await client.get("/v1/search/articles", params=strange)).status_code == 404


async def test_a_query_of_more_words_than_the_cluster_takes_is_422_not_retry(
    client: httpx.AsyncClient, author: Author
) -> None:
    """Each Chinese character is a word, searched in every field: 200 of them pass the
    cluster's clause limit. That is the query's fault, said as such, never "try again"."""
    await publish(client, author, title="长文", content="我们今天讨论数据迁移的问题。")
    # Characters of the CJK block at random: words the analyzer keeps one by one.
    long = "".join(chr(0x4E00 + secrets.randbelow(0x5000)) for _ in range(200))
    answer = await client.get("/v1/search/articles", params={"q": long}, headers=author.auth)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"
    assert "too many words" in answer.json()["error"]["message"]
    users = await client.get("/v1/search/users", params={"q": long})
    assert users.status_code in (200, 422), users.text


async def test_an_author_filter_names_one_author(
    client: httpx.AsyncClient, author: Author, other: Author
) -> None:
    marker = word()
    mine = await publish(client, author, title=f"{marker} mine")
    await publish(client, other, title=f"{marker} theirs")
    assert ids(await search(client, other, q=marker, author=author.id)) == [mine]
    assert ids(await search(client, other, q=marker, author=str(uuid.uuid4()))) == []


async def test_users_are_found_by_nickname_and_about_until_erased(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    tokens = await login(client, await account(client, unique_email))
    auth = bearer(tokens["access_token"])
    marker = word()
    patch = {"nickname": f"小明 {marker}", "about_me": "热爱数据迁移和 databases"}
    assert (await client.patch("/v1/users/me", json=patch, headers=auth)).status_code == 200
    found = await client.get("/v1/search/users", params={"q": marker}, headers=auth)
    assert found.status_code == 200, found.text
    users = found.json()["users"]
    assert [u["id"] for u in users] == [tokens["user"]["id"]]
    assert users[0]["nickname"] == f"小明 {marker}"
    assert users[0]["about_me"] == "热爱数据迁移和 databases"
    article_id = await publish(
        client, Author(tokens["user"]["id"], auth), title=f"{marker} stays", content=""
    )

    erased = await erase(client, tokens["access_token"], password=PASSWORD)
    assert erased.status_code == 204, erased.text
    after = {"bloghub-after": erased.headers["bloghub-position"]}
    gone = await client.get("/v1/search/users", params={"q": marker}, headers=after)
    assert gone.json() == {"total": 0, "users": []}

    # Their articles stay, under a deleted author. (The erasure's position names no article
    # write, so the index shows the article when it has made it searchable, not at once.)
    async def kept() -> list[tuple[str, bool]]:
        answer = await client.get("/v1/search/articles", params={"q": marker}, headers=after)
        return [(a["id"], a["author"].get("deleted")) for a in answer.json()["articles"]]

    async def shown() -> bool:
        return bool(await kept())

    await wait_until(shown, timeout_s=60)
    assert await kept() == [(article_id, True)]


NASTY = [
    '"unclosed',
    "back\\slash\\",
    "*",
    "wild*card?",
    "fuzzy~2",
    '{"query": {"match_all": {}}}',
    '{"script": {"source": "ctx._source.x = 1"}}',
    "title:secret AND state:deleted",
    "a OR b NOT c",
    "(((",
    "/regex.*/",
    "[1 TO 9]",
    "+must -not",
    "_id:*",
    "😀🔥 数据迁移",
    "\U0001d518\U0001d52b\U0001d526",  # mathematical letters
    "\u200b",
    "\ufffd",
    "x" * 10_000,
    "数" * 10_000,
    "😀" * 10_000,
]


async def raw_get(base_url: str, target: str) -> tuple[int, bytes]:
    """A GET sent as bytes: httpx refuses to build a query string past 64 KiB, which
    10,000 Chinese characters or emoji make once percent-encoded."""
    url = httpx.URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        head = f"GET {target} HTTP/1.1\r\nhost: {url.host}\r\nconnection: close\r\n\r\n"
        writer.write(head.encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


# The HTTP server takes a request target of up to 64 KiB (its parser answers 400 past
# that) and a head of up to 80 KiB (431 past that), both before the app. 10,000 Chinese
# characters make a 90 KB query string once percent-encoded.
SERVER_LINE_LIMIT = 64 * 1024


@pytest.fixture
async def indexes_ready(live_api: LiveServer) -> None:
    """The projectors create their indexes as they start; a search in the instant a shard
    is still being allocated is a fair 503, not what the fuzzing below is about."""
    c = live_api.container
    names = [index_name(c.settings.prefix, p, 1) for p in (ARTICLES, USERS)]

    async def ready() -> bool:
        exists = all([await c.search.indices.exists(index=n) for n in names])
        if not exists:
            return False
        health = await c.search.cluster.health(index=",".join(names), wait_for_status="green")
        return bool(health["status"] == "green")

    await wait_until(ready, timeout_s=30)


@given(q=st.sampled_from(NASTY) | st.text(max_size=300))
@FUZZ
async def test_any_query_is_answered_200_or_422(
    live_api: LiveServer, indexes_ready: None, q: str
) -> None:
    for path in ("/v1/search/articles", "/v1/search/users"):
        target = f"{path}?{urlencode({'q': q})}"
        status, raw = await raw_get(live_api.url, target)
        if len(target) >= SERVER_LINE_LIMIT:
            assert status in (400, 431), (q[:80], status, raw[:200])
            continue
        assert status in (200, 422), (q[:80], status, raw[:200])
        body = json.loads(raw)
        assert ("total" in body) if status == 200 else ("error" in body)
