"""RealWorld articles at /api: by slug, listed with filters and pages, updated, deleted,
favorited, and the feed; each with the spec's statuses and error bodies."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import pytest

from bloghub.api import idempotency
from bloghub.api.idempotency import fingerprint_of
from bloghub.errors import Unavailable
from bloghub.events.base import Envelope
from bloghub.events.position import Position
from bloghub.events.topics import Family, topic_for
from bloghub.settings import Settings
from tests.conftest import LiveServer, pg, read_topic
from tests.e2e.conduit_client import (
    assert_article,
    errors,
    register,
    unique_name,
    write,
    write_at,
)

pytestmark = pytest.mark.usefixtures("live_api")


async def test_an_article_is_read_by_its_slug_by_anyone(client: httpx.AsyncClient) -> None:
    jake = await register(client)
    title = unique_name("How to Train Your Dragon ")
    made = await write(client, jake, title, tagList=["dragons", "Angular"])
    assert made["slug"] == title.lower().replace(" ", "-")
    assert made["author"] == {
        "username": jake.username,
        "bio": None,
        "image": None,
        "following": False,
    }
    read = await client.get(f"/api/articles/{made['slug']}", headers=jake.auth)
    assert read.status_code == 200, read.text
    article = read.json()["article"]
    assert_article(article)
    assert (article["title"], article["description"], article["body"]) == (
        title,
        "Ever wonder how?",
        "You have to believe",
    )
    assert article["tagList"] == ["dragons", "Angular"]
    missing = await client.get("/api/articles/no-such-slug")
    assert errors(missing, 404) == {"article": ["not found"]}
    # An id in a wrapper Python's UUID takes is a slug no one holds (it was 422, "body").
    wrapped = str(uuid.uuid4())
    for slug in (f"{{{wrapped}}}", f"urn:uuid:{wrapped}"):
        for method in ("GET", "DELETE"):
            found = await client.request(method, f"/api/articles/{slug}", headers=jake.auth)
            assert errors(found, 404) == {"article": ["not found"]}, slug
        comment = f"/api/articles/{made['slug']}/comments/{slug}"
        assert errors(await client.delete(comment, headers=jake.auth), 404)


async def test_equal_titles_get_distinct_slugs(client: httpx.AsyncClient) -> None:
    jake = await register(client)
    title = unique_name("Twins ")
    first, second = await write(client, jake, title), await write(client, jake, title)
    assert first["slug"] != second["slug"]
    assert second["slug"].startswith(first["slug"] + "-")
    for made in (first, second):
        read = await client.get(f"/api/articles/{made['slug']}", headers=jake.auth)
        assert read.json()["article"]["slug"] == made["slug"]


async def test_a_new_title_moves_the_slug_and_the_old_one_stops_resolving(
    client: httpx.AsyncClient,
) -> None:
    jake = await register(client)
    made = await write(client, jake, unique_name("Before "))
    title = unique_name("After ")
    changed = await client.put(
        f"/api/articles/{made['slug']}",
        json={"article": {"title": title, "body": "Changed"}},
        headers=jake.auth,
    )
    assert changed.status_code == 200, changed.text
    article = changed.json()["article"]
    assert article["slug"] == title.lower().replace(" ", "-")
    assert (article["description"], article["body"]) == ("Ever wonder how?", "Changed")
    assert errors(await client.get(f"/api/articles/{made['slug']}"), 404)
    read = (await client.get(f"/api/articles/{article['slug']}", headers=jake.auth)).json()[
        "article"
    ]
    assert (read["title"], read["body"]) == (title, "Changed")
    # The old slug is free again: an article of that title takes it.
    old_title = made["title"]
    assert (await write(client, jake, old_title))["slug"] == made["slug"]


async def test_a_draft_edit_of_a_published_article_keeps_its_slug_until_published(
    client: httpx.AsyncClient,
) -> None:
    """The slug is a published article's public address: a /v1 edit of its draft with a
    new title neither shows that title in its links nor frees the old slug for another
    article; the publish that makes the title public moves the slug."""
    jake, ann = await register(client), await register(client)
    v1 = {"authorization": f"Bearer {jake.token}"}
    title, working = unique_name("Linked "), unique_name("Secret working title ")
    made = await client.post(
        "/v1/articles", json={"title": title, "content": "first", "tags": []}, headers=v1
    )
    article_id = made.json()["article"]["id"]
    assert (await client.post(f"/v1/articles/{article_id}/publish", headers=v1)).is_success
    slug, new_slug = (t.lower().replace(" ", "-") for t in (title, working))
    edited = await client.put(
        f"/v1/articles/{article_id}",
        json={"title": working, "content": "draft", "tags": []},
        headers=v1,
    )
    assert edited.status_code == 200, edited.text
    shown = await client.get(f"/api/articles/{slug}", headers=jake.auth)
    assert (shown.json()["article"]["slug"], shown.json()["article"]["title"]) == (slug, title)
    listed = await client.get("/api/articles", params={"author": jake.username})
    assert [a["slug"] for a in listed.json()["articles"]] == [slug]
    assert errors(await client.get(f"/api/articles/{new_slug}"), 404)
    # Another author's article of the same title does not take the address in use.
    other = await write(client, ann, title)
    assert other["slug"] != slug
    published = await client.post(f"/v1/articles/{article_id}/publish", headers=v1)
    assert published.status_code == 200, published.text
    moved = await client.get(f"/api/articles/{new_slug}", headers=jake.auth)
    assert moved.json()["article"]["title"] == working
    assert errors(await client.get(f"/api/articles/{slug}", headers=jake.auth), 404)


async def test_an_unpublished_draft_takes_no_address_from_anyone(
    client: httpx.AsyncClient,
) -> None:
    """A slug is reserved at an article's first publish, not at its draft: whoever writes
    an article of the same title meanwhile gets the plain slug, so no suffix tells them
    that someone's unpublished draft bears that title (an edit of the draft neither)."""
    jake, ann = await register(client), await register(client)
    v1 = {"authorization": f"Bearer {jake.token}"}
    title, renamed = unique_name("Quiet plans "), unique_name("Quieter plans ")
    made = await client.post(
        "/v1/articles", json={"title": title, "content": "draft", "tags": []}, headers=v1
    )
    assert made.status_code == 201, made.text
    article_id = made.json()["article"]["id"]
    edited = await client.put(
        f"/v1/articles/{article_id}",
        json={"title": renamed, "content": "draft", "tags": []},
        headers=v1,
    )
    assert edited.status_code == 200, edited.text
    slug, renamed_slug = (t.lower().replace(" ", "-") for t in (title, renamed))
    assert (await write(client, ann, title))["slug"] == slug
    assert (await write(client, ann, renamed))["slug"] == renamed_slug
    # The draft's publish takes an address then, and is read by it.
    published = await client.post(f"/v1/articles/{article_id}/publish", headers=v1)
    assert published.status_code == 200, published.text
    listed = await client.get(
        "/api/articles",
        params={"author": jake.username},
        headers={"bloghub-after": published.headers["bloghub-position"]},
    )
    (own,) = listed.json()["articles"]
    assert own["slug"].startswith(renamed_slug + "-")
    shown = await client.get(f"/api/articles/{own['slug']}")
    assert shown.json()["article"]["title"] == renamed
    # Withdrawn and edited, its new title is no one's business either until republished.
    withdrawn = await client.post(f"/v1/articles/{article_id}/withdraw", headers=v1)
    assert withdrawn.status_code == 200, withdrawn.text
    secret = unique_name("Secret merger ")
    edited = await client.put(
        f"/v1/articles/{article_id}",
        json={"title": secret, "content": "draft", "tags": []},
        headers=v1,
    )
    assert edited.status_code == 200, edited.text
    secret_slug = secret.lower().replace(" ", "-")
    assert (await write(client, ann, secret))["slug"] == secret_slug


async def test_saving_a_withdrawn_article_as_it_was_keeps_its_update_time(
    client: httpx.AsyncClient,
) -> None:
    """Saved unchanged, a withdrawn article is published again as readers saw it: the
    answer and every later read show its update time unmoved; a change moves it."""
    jake = await register(client)
    made = await write(client, jake, unique_name("Back again "))
    url = f"/api/articles/{made['slug']}"
    v1 = {"authorization": f"Bearer {jake.token}"}
    mine = await client.get("/v1/me/articles", headers=v1)
    (own,) = [a for a in mine.json()["articles"] if a["title"] == made["title"]]
    article_id = own["id"]
    for sent in ({}, {"title": made["title"], "body": made["body"]}):
        withdrawn = await client.post(f"/v1/articles/{article_id}/withdraw", headers=v1)
        assert withdrawn.status_code == 200, withdrawn.text
        saved = await client.put(url, json={"article": sent}, headers=jake.auth)
        assert saved.status_code == 200, saved.text
        assert saved.json()["article"]["updatedAt"] == made["updatedAt"], sent
        read = await client.get(url, headers={"bloghub-after": saved.headers["bloghub-position"]})
        assert read.json()["article"]["updatedAt"] == made["updatedAt"]
    withdrawn = await client.post(f"/v1/articles/{article_id}/withdraw", headers=v1)
    assert withdrawn.status_code == 200, withdrawn.text
    changed = await client.put(url, json={"article": {"body": "New"}}, headers=jake.auth)
    assert changed.status_code == 200, changed.text
    moved = changed.json()["article"]["updatedAt"]
    assert moved > made["updatedAt"]
    read = await client.get(url, headers={"bloghub-after": changed.headers["bloghub-position"]})
    assert read.json()["article"]["updatedAt"] == moved


async def test_a_title_that_makes_a_routes_name_gets_a_suffix_and_is_read_by_it(
    client: httpx.AsyncClient,
) -> None:
    """`GET /api/articles/feed` is the feed: an article slugged `feed` could never be read."""
    jake = await register(client)
    moved = await write(client, jake, unique_name("Soon the feed "))
    renamed = await client.put(
        f"/api/articles/{moved['slug']}", json={"article": {"title": "feed"}}, headers=jake.auth
    )
    assert renamed.status_code == 200, renamed.text
    made = [
        await write(client, jake, "Feed"),
        await write(client, jake, "\uff26\uff25\uff25\uff24"),  # full-width FEED
    ]
    for article in [*made, renamed.json()["article"]]:
        assert article["slug"].startswith("feed-"), article["slug"]
        read = await client.get(f"/api/articles/{article['slug']}", headers=jake.auth)
        assert read.status_code == 200, read.text
        assert read.json()["article"]["title"] == article["title"]
    feed = await client.get("/api/articles/feed", headers=jake.auth)
    assert feed.json() == {"articles": [], "articlesCount": 0}, "still the feed"


async def test_a_title_that_reads_as_an_id_gets_a_suffix(client: httpx.AsyncClient) -> None:
    """An article is found by its id where no slug matches (articles from before slugs go
    by it): a slug that reads as an id would take over another article's address."""
    ann = await register(client)
    for spelling in (str(uuid.uuid4()), str(uuid.uuid4()).upper(), uuid.uuid4().hex):
        made = await write(client, ann, spelling)
        assert made["slug"].startswith(spelling.lower() + "-"), made["slug"]  # suffixed
        read = await client.get(f"/api/articles/{made['slug']}")
        assert read.json()["article"]["title"] == spelling


async def test_a_write_answers_the_times_the_next_read_shows(client: httpx.AsyncClient) -> None:
    """A front end shows the article its write answered, then the one it reads back: the
    two show the same times (those of the write's events)."""
    jake = await register(client)

    async def read(slug: str) -> tuple[str, str]:
        got = (await client.get(f"/api/articles/{slug}", headers=jake.auth)).json()["article"]
        return got["createdAt"], got["updatedAt"]

    made = await write(client, jake, unique_name("Stamped "))
    assert (made["createdAt"], made["updatedAt"]) == await read(made["slug"])
    put = await client.put(
        f"/api/articles/{made['slug']}", json={"article": {"body": "Again"}}, headers=jake.auth
    )
    changed = put.json()["article"]
    assert (changed["createdAt"], changed["updatedAt"]) == await read(made["slug"])
    assert changed["createdAt"] == made["createdAt"], "the first publication"
    # A `/v1` draft has no address here until it is published; then its update answers
    # the times its next read shows too.
    v1 = {"authorization": f"Bearer {jake.token}"}
    title = unique_name("Drafted ")
    draft = {"title": title, "content": "Not yet", "tags": []}
    drafted = await client.post("/v1/articles", json=draft, headers=v1)
    assert drafted.status_code == 201, drafted.text
    slug = title.lower().replace(" ", "-")
    url = f"/api/articles/{slug}"
    assert errors(await client.put(url, json={"article": {"body": "Now"}}, headers=jake.auth), 404)
    article_id = drafted.json()["article"]["id"]
    assert (await client.post(f"/v1/articles/{article_id}/publish", headers=v1)).is_success
    put = await client.put(url, json={"article": {"body": "Now"}}, headers=jake.auth)
    assert put.status_code == 200, put.text
    published = put.json()["article"]
    assert (published["createdAt"], published["updatedAt"]) == await read(slug)


async def test_an_update_that_changes_nothing_records_nothing(client: httpx.AsyncClient) -> None:
    """An editor saved as it was (or an empty update) leaves the article as it is: no new
    version, and its update time stays."""
    jake = await register(client)
    made = await write(client, jake, unique_name("Unchanged "), tagList=["one"])
    url = f"/api/articles/{made['slug']}"
    put = await client.put(url, json={"article": {}}, headers=jake.auth)
    assert put.status_code == 200, put.text
    assert "bloghub-position" not in put.headers
    assert put.json()["article"] == made
    await _saved_as_loaded(client, url, jake.auth, made)
    # A change of one field is still a change.
    put = await client.put(url, json={"article": {"body": "Edited"}}, headers=jake.auth)
    assert put.json()["article"]["updatedAt"] > made["updatedAt"]


async def _saved_as_loaded(
    client: httpx.AsyncClient, url: str, auth: dict[str, str], shown: dict[str, Any]
) -> dict[str, Any]:
    """An editor's save of the article ``shown`` as it loaded it: nothing recorded, the
    article answered as it is, its update time unmoved. The form it sent."""
    same = {k: shown[k] for k in ("title", "description", "body", "tagList")}
    put = await client.put(url, json={"article": same}, headers=auth)
    assert put.status_code == 200, put.text
    assert "bloghub-position" not in put.headers
    assert put.json()["article"] == shown
    read = await client.get(url, headers=auth)
    assert read.json()["article"]["updatedAt"] == shown["updatedAt"]
    return same


async def test_saving_a_v1_article_as_it_was_records_nothing(client: httpx.AsyncClient) -> None:
    """An article written through /v1 has no description: an editor loads the abstract of
    its body in its place, and saving it as it was leaves the article as it is. The
    abstract sent back is no description: a new body shows its own."""
    jake = await register(client)
    v1 = {"authorization": f"Bearer {jake.token}"}
    title = unique_name("Abstracted ")
    body = {"title": title, "content": "# Intro\n\nSome *text*.", "tags": ["one"]}
    drafted = await client.post("/v1/articles", json=body, headers=v1)
    assert drafted.status_code == 201, drafted.text
    article_id = drafted.json()["article"]["id"]
    assert (await client.post(f"/v1/articles/{article_id}/publish", headers=v1)).is_success
    url = f"/api/articles/{title.lower().replace(' ', '-')}"
    shown = (await client.get(url, headers=jake.auth)).json()["article"]
    assert shown["description"] == "Intro Some text."
    same = await _saved_as_loaded(client, url, jake.auth, shown)
    put = await client.put(
        url, json={"article": {**same, "body": "Another opening"}}, headers=jake.auth
    )
    assert put.json()["article"]["description"] == "Another opening"
    read = await client.get(url, headers=jake.auth)
    assert read.json()["article"]["description"] == "Another opening"

    # An edit waiting as a /v1 draft: an editor saving the article as it loaded it
    # neither publishes that edit nor throws it away.
    pending = await client.put(
        f"/v1/articles/{article_id}", json={"title": title, "content": "Not yet"}, headers=v1
    )
    assert pending.status_code == 200, pending.text
    await _saved_as_loaded(client, url, jake.auth, read.json()["article"])
    mine = await client.get(f"/v1/me/articles/{article_id}", headers=v1)
    assert mine.json()["article"]["content"] == "Not yet"
    assert (await client.get(url, headers=jake.auth)).json()["article"]["body"] == (
        "Another opening"
    )

    # Withdrawn since it was loaded: the abstract sent back is still no description.
    loaded = (await client.get(url, headers=jake.auth)).json()["article"]
    withdrawn = await client.post(f"/v1/articles/{article_id}/withdraw", headers=v1)
    assert withdrawn.status_code == 200, withdrawn.text
    back = {"title": title, "description": loaded["description"], "body": loaded["body"]}
    put = await client.put(url, json={"article": back}, headers=jake.auth)
    assert put.status_code == 200, put.text
    put = await client.put(url, json={"article": {"body": "Fresh start"}}, headers=jake.auth)
    assert put.json()["article"]["description"] == "Fresh start"


async def test_only_the_author_changes_or_deletes_an_article(client: httpx.AsyncClient) -> None:
    jake, ann = await register(client), await register(client)
    slug = (await write(client, jake, unique_name("Mine ")))["slug"]
    change = {"article": {"body": "Ann's now"}}
    assert errors(await client.put(f"/api/articles/{slug}", json=change), 401) == {
        "token": ["is missing"]
    }
    theirs = await client.put(f"/api/articles/{slug}", json=change, headers=ann.auth)
    assert errors(theirs, 403) == {"article": ["forbidden"]}
    assert errors(await client.delete(f"/api/articles/{slug}", headers=ann.auth), 403)
    nowhere = await client.put("/api/articles/nowhere", json=change, headers=jake.auth)
    assert errors(nowhere, 404) == {"article": ["not found"]}
    blank = await client.put(
        f"/api/articles/{slug}", json={"article": {"title": ""}}, headers=jake.auth
    )
    assert errors(blank, 422) == {"title": ["can't be blank"]}
    spaces = await client.put(
        f"/api/articles/{slug}", json={"article": {"body": " \n\t "}}, headers=jake.auth
    )
    assert errors(spaces, 422) == {"body": ["can't be blank"]}
    # Invisible characters alone are blank too, in every field (a title or description
    # was told it held control characters).
    for field in ("title", "description", "body"):
        unseen = await client.put(
            f"/api/articles/{slug}", json={"article": {field: "\u200b "}}, headers=jake.auth
        )
        assert errors(unseen, 422) == {field: ["can't be blank"]}
    deleted = await client.delete(f"/api/articles/{slug}", headers=jake.auth)
    assert deleted.status_code == 204
    assert errors(await client.get(f"/api/articles/{slug}", headers=jake.auth), 404)
    assert errors(await client.delete(f"/api/articles/{slug}", headers=jake.auth), 404)
    # Another's unpublished article is not there for ann, as a read of it says: a 403
    # would tell her a draft has that id (it was 403).
    v1 = {"authorization": f"Bearer {jake.token}"}
    made = await client.post("/v1/articles", json={"title": "Draft only"}, headers=v1)
    draft_url = f"/api/articles/{made.json()['article']['id']}"
    assert errors(await client.get(draft_url, headers=ann.auth), 404)
    assert errors(await client.put(draft_url, json=change, headers=ann.auth), 404)
    assert errors(await client.delete(draft_url, headers=ann.auth), 404)


@pytest.mark.parametrize(
    ("article", "field", "message"),
    [
        ({"description": "d", "body": "b"}, "title", "can't be blank"),
        ({"title": "  ", "description": "d", "body": "b"}, "title", "can't be blank"),
        ({"title": "t", "description": "", "body": "b"}, "description", "can't be blank"),
        ({"title": "t", "description": "d", "body": ""}, "body", "can't be blank"),
        ({"title": "t", "description": "d", "body": "   \n\t "}, "body", "can't be blank"),
        (
            {"title": "t", "description": "d", "body": "\u200b\n"},
            "body",
            "can't be blank",  # as the README says (it was "must contain visible text")
        ),
        ({"title": "t" * 129, "description": "d", "body": "b"}, "title", None),
        ({"title": 5, "description": "d", "body": "b"}, "title", "is invalid"),
        ({"title": None, "description": "d", "body": "b"}, "title", "can't be blank"),
        ({"title": "t", "description": "d", "body": "b", "tagList": "x"}, "tagList", None),
        ({"title": "t", "description": "d", "body": "b", "tagList": [""]}, "tagList", None),
        (
            {"title": "t", "description": "d", "body": "b", "tagList": ["x"] * 60},
            "tagList",
            "has too many entries (maximum is 50)",
        ),
    ],
)
async def test_a_new_article_with_bad_fields_is_422(
    client: httpx.AsyncClient, article: dict[str, object], field: str, message: str | None
) -> None:
    jake = await register(client)
    found = errors(
        await client.post("/api/articles", json={"article": article}, headers=jake.auth), 422
    )
    assert field in found
    if message is not None:
        assert found[field] == [message]


async def test_writing_needs_a_token(client: httpx.AsyncClient) -> None:
    body = {"article": {"title": "t", "description": "d", "body": "b"}}
    assert errors(await client.post("/api/articles", json=body), 401) == {"token": ["is missing"]}
    bad = await client.post("/api/articles", json=body, headers={"authorization": "Token x.y.z"})
    assert errors(bad, 401) == {"token": ["is invalid"]}


@pytest.mark.parametrize("path", ["/api/articles", "/api/tags", "/api/articles/no-such/comments"])
async def test_a_public_read_with_an_authorization_that_holds_no_token_is_401(
    client: httpx.AsyncClient, path: str
) -> None:
    """A client whose header went wrong is told so, as for a bad token, not served as
    anonymous (every article shown unfavorited, as though its favorites were lost)."""
    jake = await register(client)
    for header in ("Bearer", "Token", "Basic YTpi", f"Token\t{jake.token}"):
        bad = await client.get(path, headers={"authorization": header})
        assert errors(bad, 401) == {"token": ["is invalid"]}, header
    assert (await client.get("/api/articles", headers=jake.auth)).status_code == 200


async def test_lists_are_newest_first_paged_by_offset_with_the_total_and_no_body(
    client: httpx.AsyncClient,
) -> None:
    jake = await register(client)
    tag = unique_name("paged")
    slugs = [(await write(client, jake, f"Part {i}", tagList=[tag]))["slug"] for i in range(5)]
    newest_first = slugs[::-1]
    pages = []
    for offset in (0, 2, 4):
        answer = await client.get(
            "/api/articles", params={"tag": tag, "limit": 2, "offset": offset}, headers=jake.auth
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["articlesCount"] == 5, "the total, not the page's size"
        for item in body["articles"]:
            assert_article(item, listed=True)
        pages.append([a["slug"] for a in body["articles"]])
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
    by_author = (
        await client.get("/api/articles", params={"author": jake.username}, headers=jake.auth)
    ).json()
    assert [a["slug"] for a in by_author["articles"]] == newest_first
    past = (
        await client.get("/api/articles", params={"tag": tag, "offset": 10}, headers=jake.auth)
    ).json()
    assert past == {"articles": [], "articlesCount": 5}
    nobody = (await client.get("/api/articles", params={"author": unique_name()})).json()
    assert nobody == {"articles": [], "articlesCount": 0}
    # A front end that sends every field of its form sends the ones left empty: no filter.
    for blank in ("", " ", "\t", "\u200b"):
        sent_empty = {"tag": blank, "favorited": blank, "author": jake.username, "limit": "5"}
        everything = await client.get("/api/articles", params=sent_empty, headers=jake.auth)
        assert [a["slug"] for a in everything.json()["articles"]] == newest_first, repr(blank)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        # Digits as a query string writes them, not all that Python's int() reads.
        ({"limit": "1_0"}, "limit"),
        ({"limit": "\u0663"}, "limit"),
        ({"offset": " 3"}, "offset"),
        ({"offset": "9" * 5000}, "offset"),
    ],
)
async def test_bad_paging_is_422(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    assert field in errors(await client.get("/api/articles", params=params), 422)
    jake = await register(client)
    assert field in errors(
        await client.get("/api/articles/feed", params=params, headers=jake.auth), 422
    )


async def test_favorites_are_likes_counted_and_listed_by_who_favorited(
    client: httpx.AsyncClient,
) -> None:
    jake, ann, bob = await register(client), await register(client), await register(client)
    made, after = await write_at(client, jake, unique_name("Liked "))
    slug = made["slug"]
    # The fans act on the article once it is there for them (the writer's position).
    for fan in (ann, bob):
        liked = await client.post(f"/api/articles/{slug}/favorite", headers={**fan.auth, **after})
        assert liked.status_code == 200, liked.text
    # Everyone reads both favorites from here on: bob's came last, on the article's partition
    # (a reader waits for its own writes alone, not for others').
    both = {"bloghub-after": liked.headers["bloghub-position"]}
    again = await client.post(f"/api/articles/{slug}/favorite", headers={**ann.auth, **both})
    assert (again.json()["article"]["favorited"], again.json()["article"]["favoritesCount"]) == (
        True,
        2,
    ), "favoriting twice counts once"
    seen = (await client.get(f"/api/articles/{slug}", headers={**jake.auth, **both})).json()[
        "article"
    ]
    assert (seen["favorited"], seen["favoritesCount"]) == (False, 2)
    by_ann = (
        await client.get("/api/articles", params={"favorited": ann.username}, headers=ann.auth)
    ).json()
    assert [a["slug"] for a in by_ann["articles"]] == [slug]
    undone = await client.delete(f"/api/articles/{slug}/favorite", headers={**ann.auth, **both})
    assert undone.status_code == 200, undone.text
    assert (undone.json()["article"]["favorited"], undone.json()["article"]["favoritesCount"]) == (
        False,
        1,
    )
    after = (
        await client.get("/api/articles", params={"favorited": ann.username}, headers=ann.auth)
    ).json()
    assert after == {"articles": [], "articlesCount": 0}
    assert errors(await client.post(f"/api/articles/{slug}/favorite"), 401)
    assert errors(await client.post("/api/articles/nope/favorite", headers=ann.auth), 404) == {
        "article": ["not found"]
    }


async def test_a_double_submitted_update_is_saved_not_refused(client: httpx.AsyncClient) -> None:
    """A double-clicked Publish sends the same update again before the first is answered,
    and two tabs of one author save at once: RealWorld's update names no version, so every
    request is applied to the article as the others left it, each answered 200, and the
    article ends as one of them made it (the last applied wins). Before, all but one got
    422 ``version: stale``, which a RealWorld client has no way to act on."""
    jake = await register(client)
    made = await write(client, jake, unique_name("Clicked "))
    url = f"/api/articles/{made['slug']}"
    same = await asyncio.gather(
        *(client.put(url, json={"article": {"body": "Saved"}}, headers=jake.auth) for _ in range(3))
    )
    assert [r.status_code for r in same] == [200] * 3, [r.text for r in same]
    assert [r.json()["article"]["body"] for r in same] == ["Saved"] * 3
    bodies = [f"Tab {i}" for i in range(3)]
    tabs = await asyncio.gather(
        *(client.put(url, json={"article": {"body": b}}, headers=jake.auth) for b in bodies)
    )
    assert [r.status_code for r in tabs] == [200] * 3, [r.text for r in tabs]
    assert sorted(r.json()["article"]["body"] for r in tabs) == bodies
    read = await client.get(url, headers=jake.auth)
    assert read.json()["article"]["body"] in bodies
    assert read.json()["article"]["title"] == made["title"]
    # A double-clicked Save of a new title: the first moves the slug in the path, and the
    # second is decided on the article where it went (it was 404).
    title = unique_name("Retitled ")
    retitled = await asyncio.gather(
        *(client.put(url, json={"article": {"title": title}}, headers=jake.auth) for _ in range(2))
    )
    assert [r.status_code for r in retitled] == [200] * 2, [r.text for r in retitled]
    slugs = {r.json()["article"]["slug"] for r in retitled}
    assert len(slugs) == 1
    assert made["slug"] not in slugs
    url = f"/api/articles/{slugs.pop()}"
    assert (await client.get(url, headers=jake.auth)).json()["article"]["title"] == title
    # A double-clicked delete: one deletes, the other finds nothing left to delete.
    gone = await asyncio.gather(*(client.delete(url, headers=jake.auth) for _ in range(2)))
    assert sorted(r.status_code for r in gone) == [204, 404], [r.text for r in gone]


async def test_a_double_submitted_favorite_answers_one_favorite(
    client: httpx.AsyncClient,
) -> None:
    """A double click sends the favorite again before the first is answered: every answer
    counts the caller once, as the next read does."""
    jake, ann = await register(client), await register(client)
    for _ in range(3):
        made, after = await write_at(client, jake, unique_name("Double "))
        url = f"/api/articles/{made['slug']}/favorite"
        clicks = await asyncio.gather(
            *(client.post(url, headers={**ann.auth, **after}) for _ in range(4))
        )
        shown = [(r.status_code, r.json()["article"]["favorited"]) for r in clicks]
        assert shown == [(200, True)] * 4
        assert [r.json()["article"]["favoritesCount"] for r in clicks] == [1] * 4
        read = await client.get(f"/api/articles/{made['slug']}", headers=ann.auth)
        assert (read.json()["article"]["favorited"], read.json()["article"]["favoritesCount"]) == (
            True,
            1,
        )


async def test_the_feed_is_the_followed_authors_articles_and_needs_a_token(
    client: httpx.AsyncClient,
) -> None:
    jake, ann = await register(client), await register(client)
    assert errors(await client.get("/api/articles/feed"), 401) == {"token": ["is missing"]}
    empty = (await client.get("/api/articles/feed", headers=ann.auth)).json()
    assert empty == {"articles": [], "articlesCount": 0}
    await client.post(f"/api/profiles/{jake.username}/follow", headers=ann.auth)
    slugs: list[str] = []
    afters: list[dict[str, str]] = []
    for _ in range(3):
        made, after = await write_at(client, jake, unique_name("Feed "))
        slugs.append(made["slug"])
        afters.append(after)
    # Ann's reads wait for her own writes; Jake's articles are keyed to partitions of their
    # own, so she names each of his positions before she reads the feed at the last one.
    for after in afters[:-1]:
        waited = await client.get("/api/articles/feed", headers={**ann.auth, **after})
        assert waited.status_code == 200, waited.text
    mine = {**ann.auth, **afters[-1]}
    first = (await client.get("/api/articles/feed", params={"limit": 2}, headers=mine)).json()
    assert [a["slug"] for a in first["articles"]] == slugs[::-1][:2]
    assert first["articlesCount"] == 3
    rest = await client.get("/api/articles/feed", params={"limit": 2, "offset": 2}, headers=mine)
    assert [a["slug"] for a in rest.json()["articles"]] == slugs[:1]
    assert_article(rest.json()["articles"][0], listed=True)


async def test_the_feed_counts_what_it_lists(client: httpx.AsyncClient, settings: Settings) -> None:
    """The feed's ids come from the social read model and its articles from the articles
    one, which two projectors apply apart: an article the first lists and the second does
    not show (yet, or any more) was left off the page but counted, so a front end's page
    links promised one more than there was."""
    jake, ann = await register(client), await register(client)
    await client.post(f"/api/profiles/{jake.username}/follow", headers=ann.auth)
    made = [await write_at(client, jake, unique_name("Counted ")) for _ in range(3)]
    # Each of Jake's positions waited for (his articles are keyed to partitions of their own).
    for _, after in made:
        waited = await client.get("/api/articles/feed", headers={**ann.auth, **after})
        assert waited.status_code == 200, waited.text
    assert (await client.get("/api/articles/feed", headers=ann.auth)).json()["articlesCount"] == 3
    hidden = made[1][0]["slug"]
    # The articles projector ahead of the social one: it no longer shows the middle one.
    async with pg(settings) as conn:
        await conn.execute(
            "UPDATE articles_g1.articles SET status = 'withdrawn' WHERE slug = $1", hidden
        )
    try:
        feed = (await client.get("/api/articles/feed", headers=ann.auth)).json()
        assert [a["slug"] for a in feed["articles"]] == [made[2][0]["slug"], made[0][0]["slug"]]
        assert feed["articlesCount"] == 2
        # A page before the last keeps the feed's own count: offsets count its rows, and
        # with one less the last article could not be reached.
        first = await client.get("/api/articles/feed", params={"limit": 1}, headers=ann.auth)
        assert first.json()["articlesCount"] == 3
    finally:
        async with pg(settings) as conn:
            await conn.execute(
                "UPDATE articles_g1.articles SET status = 'published' WHERE slug = $1", hidden
            )


async def test_tags_lists_the_tags_of_published_articles(client: httpx.AsyncClient) -> None:
    jake = await register(client)
    tag = unique_name("tagged")
    await write(client, jake, unique_name("Tagged "), tagList=[tag])
    answer = await client.get("/api/tags", headers=jake.auth)
    assert answer.status_code == 200
    assert tag in answer.json()["tags"]
    assert all(isinstance(t, str) for t in answer.json()["tags"])


async def test_a_tag_filter_finds_tags_as_they_are_kept(client: httpx.AsyncClient) -> None:
    """Tags are kept trimmed, with single spaces: a filter spelled with more finds them,
    as on /v1; one no tag can be finds nothing."""
    jake = await register(client)
    tag = f"two words {unique_name('t')[-8:]}"
    made, after = await write_at(client, jake, unique_name("Spaced "), tagList=[tag])
    spelled = f"  {tag.replace(' ', '   ')} "
    found = await client.get("/api/articles", params={"tag": spelled}, headers=after)
    assert [a["slug"] for a in found.json()["articles"]] == [made["slug"]]
    nothing = await client.get("/api/articles", params={"tag": "x" * 40}, headers=after)
    assert nothing.json() == {"articles": [], "articlesCount": 0}


async def test_an_article_written_through_v1_is_shown_by_its_slug(
    client: httpx.AsyncClient,
) -> None:
    jake = await register(client)
    v1 = {"authorization": f"Bearer {jake.token}"}
    title = unique_name("Native ")
    made = await client.post(
        "/v1/articles", json={"title": title, "content": "# Hello\nworld", "tags": []}, headers=v1
    )
    assert made.status_code == 201, made.text
    article_id = made.json()["article"]["id"]
    published = await client.post(f"/v1/articles/{article_id}/publish", headers=v1)
    assert published.status_code == 200, published.text
    slug = title.lower().replace(" ", "-")
    read = await client.get(f"/api/articles/{slug}", headers=jake.auth)
    assert read.status_code == 200, read.text
    assert read.json()["article"]["description"] == "Hello world", "the abstract stands in"


def refuse_publications(live_api: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's event log refuses every append holding a publication, until
    ``monkeypatch.undo()``."""
    log = live_api.container.commands.event_log
    append = log.append

    async def refusing(envelopes: Sequence[Envelope], **kw: Any) -> Position:
        if any(e.type == "article.published" for e in envelopes):
            raise Unavailable("the event log did not take the write")
        return await append(envelopes, **kw)

    monkeypatch.setattr(log, "append", refusing)


async def test_a_publish_the_log_refuses_leaves_no_draft_behind(
    client: httpx.AsyncClient,
    settings: Settings,
    live_api: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RealWorld has no drafts: the draft and its publication are one append. The log
    refusing the publication refuses the draft with it, so the 503 is true (nothing was
    made) and a retry makes one article, not a second, hidden draft."""
    jake = await register(client)
    refuse_publications(live_api, monkeypatch)
    title = unique_name("One append ")
    body = {"article": {"title": title, "description": "d", "body": "b"}}
    refused = await client.post("/api/articles", json=body, headers=jake.auth)
    assert refused.status_code == 503, refused.text
    monkeypatch.undo()
    made = await client.post("/api/articles", json=body, headers=jake.auth)
    assert made.status_code == 201, made.text
    records = await read_topic(settings, topic_for(settings.prefix, Family.ARTICLES))
    titled = [
        (e["type"], e["payload"]["version"])
        for r in records
        if (e := orjson.loads(r.value))["payload"].get("title") == title
    ]
    assert titled == [("article.drafted", 1), ("article.published", 2)]


async def test_an_update_the_log_refuses_changes_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    live_api: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An update of a published article is an edit and its publication, one append: the
    log refusing the publication refuses the edit with it, so the 503 is true (the log
    holds no edit) and a retry records the change once."""
    jake = await register(client)
    made = await write(client, jake, unique_name("Kept "))

    async def recorded() -> list[tuple[str, int]]:
        records = await read_topic(settings, topic_for(settings.prefix, Family.ARTICLES))
        return [
            (e["type"], e["payload"]["version"])
            for r in records
            if (e := orjson.loads(r.value))["payload"].get("slug") == made["slug"]
        ]

    refuse_publications(live_api, monkeypatch)
    change = {"article": {"body": "Changed"}}
    refused = await client.put(f"/api/articles/{made['slug']}", json=change, headers=jake.auth)
    assert refused.status_code == 503, refused.text
    monkeypatch.undo()
    first = [("article.drafted", 1), ("article.published", 2)]
    assert await recorded() == first
    changed = await client.put(f"/api/articles/{made['slug']}", json=change, headers=jake.auth)
    assert changed.status_code == 200, changed.text
    assert changed.json()["article"]["body"] == "Changed"
    assert await recorded() == [*first, ("article.draft_edited", 3), ("article.published", 4)]
    read = await client.get(f"/api/articles/{made['slug']}", headers=jake.auth)
    assert read.json()["article"]["body"] == "Changed"


async def test_an_idempotency_key_makes_a_retried_publish_one_article(
    client: httpx.AsyncClient,
) -> None:
    """As on /v1: a front end that sends Idempotency-Key (CORS lets it) gets the first
    answer again for a retry, not a second article (it was ignored: two articles)."""
    jake = await register(client)
    title = unique_name("Once ")
    body = {"article": {"title": title, "description": "d", "body": "b"}}
    keyed = {**jake.auth, "idempotency-key": f"publish-{uuid.uuid4()}"}
    first = await client.post("/api/articles", json=body, headers=keyed)
    again = await client.post("/api/articles", json=body, headers=keyed)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["idempotent-replay"] == "true"
    assert again.json() == first.json()
    mine = await client.get("/api/articles", params={"author": jake.username}, headers=jake.auth)
    assert [a["title"] for a in mine.json()["articles"]] == [title]
    other = {"article": {**body["article"], "body": "other"}}
    reused = await client.post("/api/articles", json=other, headers=keyed)
    assert errors(reused, 422) == {"idempotency-key": ["was used for a different request"]}
    comments = f"/api/articles/{first.json()['article']['slug']}/comments"
    said = {"comment": {"body": "Once only"}}
    answers = [await client.post(comments, json=said, headers=keyed) for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201], answers[1].text
    assert answers[1].json() == answers[0].json()
    listed = await client.get(comments, headers=jake.auth)
    assert [c["body"] for c in listed.json()["comments"]] == ["Once only"]


async def test_a_retry_whose_first_request_still_runs_is_told_to_come_back(
    client: httpx.AsyncClient, live_api: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A comment retried while the first still ran past the wait was 422, "names a request
    still running; retry": the spec has no 409 there, and a front end does not retry what
    it is told is its input's fault. It is the service's 503 with Retry-After."""
    monkeypatch.setattr(idempotency, "RUNNING_WAIT_S", 0.3)
    jake = await register(client)
    made = await write(client, jake, unique_name("Held "))
    me = await client.get("/v1/users/me", headers={"authorization": f"Bearer {jake.token}"})
    path = f"/api/articles/{made['slug']}/comments"
    said = {"comment": {"body": "held"}}
    key = f"held-{uuid.uuid4()}"
    c = live_api.container
    entry = c.cache.key("idem", me.json()["user"]["id"], "POST", path, key)
    first = {"state": "running", "fingerprint": fingerprint_of(orjson.dumps(said))}
    await c.redis.set(entry, orjson.dumps({**first, "at": time.time()}), ex=60)
    retried = await client.post(path, json=said, headers={**jake.auth, "idempotency-key": key})
    assert errors(retried, 503) == {"idempotency-key": ["names a request still running; retry"]}
    assert retried.headers["retry-after"] == "1"
    # Where the spec has a 409 (a new article), it is the 409, saying when to come back.
    article = {"article": {"title": "Held", "description": "d", "body": "b"}}
    held = {**first, "fingerprint": fingerprint_of(orjson.dumps(article))}
    key = f"held-{uuid.uuid4()}"
    entry = c.cache.key("idem", me.json()["user"]["id"], "POST", "/api/articles", key)
    await c.redis.set(entry, orjson.dumps({**held, "at": time.time()}), ex=60)
    again = await client.post(
        "/api/articles", json=article, headers={**jake.auth, "idempotency-key": key}
    )
    assert errors(again, 409) == {"idempotency-key": ["names a request still running; retry"]}
    assert again.headers["retry-after"] == "1"
    listed = await client.get(path, headers=jake.auth)
    assert listed.json()["comments"] == []
