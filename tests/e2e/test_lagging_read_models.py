"""Each projector applies the log at its own pace, so one read model can show what another
has not applied yet. An answer that needs the one behind waits for it (503 to retry while
it cannot), never says that what the reader was just shown is missing, unpublished or
written by no one."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx

from bloghub.events.codec import decode
from bloghub.events.position import Position
from bloghub.events.topics import Family, topic_for
from bloghub.ids import new_id_str
from bloghub.settings import Settings
from tests.conftest import isolated, projecting, read_topic, serve
from tests.e2e.conduit_client import register, unique_name
from tests.e2e.test_articles import Author, draft
from tests.e2e.test_hidden_articles import someone
from tests.e2e.test_sms_abuse import site as site_with_sms
from tests.e2e.test_sms_login import code_sent_to, new_phone
from tests.sms_gateway import Gateway
from tests.support import once_caught_up, passed, wait_until


@asynccontextmanager
async def site(run_id: str, name: str) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    """An instance of its own whose reads wait briefly, served, with a client of it."""
    async with (
        isolated(run_id, name, read_wait_s=0.3) as s,
        serve(s) as live,
        httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=10) as c,
    ):
        yield s, c


async def _published(c: httpx.AsyncClient, **fields: object) -> tuple[Author, Author, str]:
    """An author, a reader and the author's article, published."""
    author, reader = await someone(c), await someone(c)
    article_id = await draft(c, author, **fields)
    publish = f"/v1/articles/{article_id}/publish"
    assert (await once_caught_up(lambda: c.post(publish, headers=author.auth))).is_success
    return author, reader, article_id


def _retry_later(answer: httpx.Response) -> bool:
    if answer.status_code != 503:
        return False
    body = answer.json()
    return body.get("error", {}).get("code") == "catching_up" or "server" in body.get("errors", {})


async def _applied(s: Settings, projector: str, *answers: httpx.Response) -> None:
    """Until ``projector`` has applied the writes ``answers`` were the answers to."""
    written = [Position.decode(a.headers["bloghub-position"].rpartition(".")[0]) for a in answers]

    async def done() -> bool:
        return all([await passed(s, projector, position) for position in written])

    await wait_until(done, timeout_s=30)


async def _the_one_tagged(c: httpx.AsyncClient, tag: str) -> dict[str, Any]:
    """The one article tagged ``tag``, once the listing shows it."""
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        answer = await c.get("/api/articles", params={"tag": tag})
        if answer.status_code == 200:
            found[:] = answer.json()["articles"]
        return len(found) == 1

    await wait_until(listed, timeout_s=30)
    return found[0]


async def test_a_like_of_an_article_published_again_waits_for_the_likes_read_model(
    run_id: str,
) -> None:
    async with site(run_id, "again") as (s, c):
        tag = unique_name("again")
        async with projecting(s):
            author, reader, article_id = await _published(c, tags=[tag])
            publish = f"/v1/articles/{article_id}/publish"
            # The author's publish may still be on its way to the read model (the bound is
            # 0.3 s here): retried as a client told to retry does.
            withdrawn = await once_caught_up(
                lambda: c.post(f"/v1/articles/{article_id}/withdraw", headers=author.auth)
            )
            assert withdrawn.status_code == 200, withdrawn.text
            like = f"/v1/articles/{article_id}/like"
            refused = await once_caught_up(lambda: c.put(like, headers=reader.auth))
            assert refused.status_code == 409, refused.text

        # Published again while no projector runs; then only the articles one catches up.
        assert (await c.post(publish, headers=author.auth)).status_code == 200
        async with projecting(s, "articles", "users"):
            slug = (await _the_one_tagged(c, tag))["slug"]
            early = await c.put(like, headers=reader.auth)
            assert _retry_later(early), (early.status_code, early.text)
            favorite = f"/api/articles/{slug}/favorite"
            early = await c.post(favorite, headers=reader.auth)
            assert _retry_later(early), (early.status_code, early.text)

        async with projecting(s):
            liked = await once_caught_up(lambda: c.put(like, headers=reader.auth))
            assert liked.status_code == 200, liked.text
            assert liked.json()["article"]["liked"] is True
            shown_to_reader = await once_caught_up(
                lambda: c.get(f"/api/articles/{slug}", headers=reader.auth)
            )
            assert shown_to_reader.json()["article"]["favorited"] is True


async def test_a_read_served_before_the_counts_read_model_has_the_article_is_counted(
    run_id: str,
) -> None:
    """The detail answered, but a read was noted only once the interactions projector had
    seen the article published: a read while it lagged behind the articles one was lost."""
    async with site(run_id, "earlyread") as (s, c):
        async with projecting(s):
            author, reader = await someone(c), await someone(c)
            article_id = await draft(c, author)
        url = f"/v1/articles/{article_id}"
        async with projecting(s, "articles", "users"):
            publish = f"{url}/publish"
            assert (await once_caught_up(lambda: c.post(publish, headers=author.auth))).is_success

            async def shown_to_reader() -> bool:
                return (await c.get(url, headers=reader.auth)).status_code == 200

            await wait_until(shown_to_reader, timeout_s=10)
            anonymous = await c.get(url, headers={"x-forwarded-for": "198.51.100.21"})
            assert anonymous.status_code == 200, anonymous.text
            assert anonymous.json()["article"]["read_cnt"] == 0

        async with projecting(s):

            async def read_cnt() -> int:
                answer = await c.get(url, headers=author.auth)  # the author's reads count not
                assert answer.status_code == 200, answer.text
                count: int = answer.json()["article"]["read_cnt"]
                return count

            async def both_counted() -> bool:
                return await read_cnt() >= 2

            await wait_until(both_counted, timeout_s=30)
            assert await read_cnt() == 2


async def test_a_new_account_s_first_article_shows_its_author_not_the_erased_one(
    run_id: str,
) -> None:
    async with site(run_id, "firstpost") as (s, c):
        tag = unique_name("first")
        # No projector runs: the account is in the log only.
        author = await register(c)
        body = {"title": f"First {unique_name()}", "description": "d", "body": "b"}
        # /api answers an article with its author: refused until the account is applied,
        # with nothing recorded, rather than answered as "deleted user".
        made = await c.post(
            "/api/articles", json={"article": {**body, "tagList": [tag]}}, headers=author.auth
        )
        assert _retry_later(made), (made.status_code, made.text)
        # /v1 answers a draft and a publish without it: the article is in the log only.
        token = {"authorization": f"Bearer {author.token}"}
        v1_id = await draft(c, Author("", token), tags=[tag])
        async with projecting(s, "articles"):
            publish = f"/v1/articles/{v1_id}/publish"
            published = await once_caught_up(lambda: c.post(publish, headers=token))
            assert published.status_code == 200, published.text
            await _applied(s, "articles", published)
            for answer in (
                await c.get("/api/articles", params={"tag": tag}),
                await c.get(f"/v1/articles/{v1_id}"),
            ):
                assert _retry_later(answer), (answer.request.url, answer.status_code, answer.text)

        async with projecting(s):
            listed = await once_caught_up(lambda: c.get("/api/articles", params={"tag": tag}))
            (shown,) = listed.json()["articles"]
            assert shown["author"]["username"] == author.username
            detail = await once_caught_up(lambda: c.get(f"/v1/articles/{v1_id}"))
            assert detail.json()["article"]["author"]["nickname"] == author.username


async def test_a_comment_not_applied_yet_is_waited_for_when_deleted_by_its_id(
    run_id: str,
) -> None:
    async with site(run_id, "uncomment") as (s, c):
        tag = unique_name("talk")
        async with projecting(s):
            author, reader, article_id = await _published(c, tags=[tag])
            comments = f"/api/articles/{(await _the_one_tagged(c, tag))['slug']}/comments"
            # Every read model the deletion decides on has the author's own writes.
            mine = await once_caught_up(lambda: c.get(comments, headers=author.auth))
            assert mine.status_code == 200, mine.text

        # The comments projector does not run: the comment is in the log only.
        posted = await c.post(
            f"/v1/articles/{article_id}/comments", json={"content": "hi"}, headers=reader.auth
        )
        assert posted.status_code == 201, posted.text
        comment = f"{comments}/{posted.json()['comment']['id']}"
        async with projecting(s, "articles", "users"):
            early = await c.delete(comment, headers=author.auth)
            assert _retry_later(early), (early.status_code, early.text)

        async with projecting(s):
            gone = await once_caught_up(lambda: c.delete(comment, headers=author.auth))
            assert gone.status_code == 204, gone.text
            left = await once_caught_up(lambda: c.get(comments, headers=author.auth))
            assert left.json()["comments"] == []


def _offset(answer: httpx.Response) -> int:
    """Where in the log the write this is the answer to landed (one record)."""
    ((_, _, offset),) = Position.decode(answer.headers["bloghub-position"].rpartition(".")[0])
    return offset


async def test_collecting_in_two_tabs_answers_what_the_caller_then_holds(run_id: str) -> None:
    """A collect into one collection and an uncollect from another sent at once, then two
    uncollects at once: each answer's ``collected`` is what the caller holds once its own
    write is applied, in log order (both are keyed by the article)."""
    async with site(run_id, "twotabs") as (s, c), projecting(s):
        _, reader, article_id = await _published(c)
        boxes = []
        for name in ("one", "two"):
            made = await c.post("/v1/collections", json={"name": name}, headers=reader.auth)
            assert made.status_code == 201, made.text
            boxes.append(made.json()["collection"]["id"])
        one, two = (f"/v1/collections/{box}/articles/{article_id}" for box in boxes)

        async def settled(method: str, path: str) -> None:
            done = await once_caught_up(partial(c.request, method, path, headers=reader.auth))
            assert done.status_code == 200, done.text

        for _ in range(3):
            await settled("PUT", two)
            await settled("DELETE", one)
            into, out = await asyncio.gather(
                c.put(one, headers=reader.auth), c.delete(two, headers=reader.auth)
            )
            assert (into.status_code, out.status_code) == (200, 200), (into.text, out.text)
            assert into.json()["article"]["collected"] is True
            # Taken out of two after the collect into one: still held.
            assert out.json()["article"]["collected"] is (_offset(out) > _offset(into)), (
                _offset(into),
                _offset(out),
            )
            await settled("PUT", two)
            first, second = await asyncio.gather(
                c.delete(one, headers=reader.auth), c.delete(two, headers=reader.auth)
            )
            assert (first.status_code, second.status_code) == (200, 200)
            said = {_offset(a): a.json()["article"]["collected"] for a in (first, second)}
            # The earlier leaves it in the other collection; the later in none.
            assert [said[o] for o in sorted(said)] == [True, False], said


async def test_a_hidden_article_is_taken_out_of_a_collection_without_waiting(
    run_id: str,
) -> None:
    """Taking an article out needs it known, not shown: a later change of the article the
    likes read model has not applied (here its delete) holds nothing up."""
    async with site(run_id, "takeout") as (s, c):
        async with projecting(s):
            author, fan, article_id = await _published(c)
            made = await once_caught_up(
                lambda: c.post("/v1/collections", json={"name": "Later"}, headers=fan.auth)
            )
            entry = f"/v1/collections/{made.json()['collection']['id']}/articles/{article_id}"
            put = await once_caught_up(lambda: c.put(entry, headers=fan.auth))
            assert put.status_code == 200, put.text
            withdraw = f"/v1/articles/{article_id}/withdraw"
            assert (await once_caught_up(lambda: c.post(withdraw, headers=author.auth))).is_success
            like = f"/v1/articles/{article_id}/like"
            refused = await once_caught_up(lambda: c.put(like, headers=fan.auth))
            assert refused.status_code == 409, refused.text  # the likes read model hides it

            async def withdrawn() -> bool:
                mine = await c.get(f"/v1/me/articles/{article_id}", headers=author.auth)
                fresh = mine.status_code == 200 and "bloghub-stale" not in mine.headers
                return fresh and mine.json()["article"]["status"] == "withdrawn"

            await wait_until(withdrawn, timeout_s=60)

        # No projector runs: the delete is in the log only.
        deleted = await c.delete(f"/v1/articles/{article_id}", headers=author.auth)
        assert deleted.status_code == 204, deleted.text
        taken = await c.delete(entry, headers=fan.auth)
        assert taken.status_code == 200, taken.text
        assert taken.json()["article"] == {"id": article_id, "collected": False}


async def test_a_read_waits_one_bound_however_many_read_models_it_waits_on(run_id: str) -> None:
    """/v1/users/me waits for the users projector in the session check, then for the read
    models it reads: the bound is the request's, not each wait's (it took two bounds)."""
    bound = 1.0
    async with (
        isolated(run_id, "onebound", read_wait_s=bound) as s,
        serve(s) as live,
        httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=10) as c,
    ):
        async with projecting(s):
            me = await someone(c)
            shown = await once_caught_up(lambda: c.get("/v1/users/me", headers=me.auth))
            assert shown.status_code == 200, shown.text
        # No projector runs: the rename is in the log only.
        renamed = await c.patch(
            "/v1/users/me", json={"nickname": unique_name("Later")}, headers=me.auth
        )
        assert renamed.status_code == 200, renamed.text
        started = time.monotonic()
        stale = await c.get("/v1/users/me", headers=me.auth)
        took = time.monotonic() - started
        assert stale.status_code == 200, stale.text
        assert stale.headers["bloghub-stale"] == "true"
        assert stale.json()["user"]["nickname"] is None
        assert bound <= took < 1.8 * bound, took  # one bound and the request's own time


async def test_a_read_whose_wait_runs_out_is_asked_back_never_told_not_found(
    run_id: str,
) -> None:
    """A reader names a publish no projector has applied yet: "no such article" would be
    final for a client (it was a plain 404), so the read is 503 to retry."""
    async with site(run_id, "ranout") as (s, c):
        async with projecting(s):
            author, reader = await someone(c), await someone(c)
            article_id = await draft(c, author)
            mine = f"/v1/me/articles/{article_id}"
            assert (await once_caught_up(lambda: c.get(mine, headers=author.auth))).is_success
        # No projector runs: the publish is in the log only.
        published = await c.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
        assert published.status_code == 200, published.text
        after = {"bloghub-after": published.headers["bloghub-position"]}
        detail = f"/v1/articles/{article_id}"
        for path, headers in (
            (detail, after),
            (detail, author.auth),
            (f"{detail}/comments", after),
        ):
            answer = await c.get(path, headers=headers)
            assert _retry_later(answer), (path, answer.status_code, answer.text)
            assert answer.headers["retry-after"] == "1", path
        # A reader's own account write, not applied: a list that shows accounts (its
        # authors) says it may be stale.
        renamed = await c.patch("/v1/users/me", json={"about_me": "later"}, headers=reader.auth)
        assert renamed.status_code == 200, renamed.text
        listed = await c.get("/v1/articles", headers=reader.auth)
        assert listed.status_code == 200, listed.text
        assert listed.headers.get("bloghub-stale") == "true"
        # A not-found whose own wait did not run out stays a 404: another's article that
        # is not there, a cursor that names no page.
        missing = await c.get(f"/v1/articles/{uuid.uuid4()}", headers=reader.auth)
        assert missing.status_code == 404, missing.text
        for path in ("/v1/articles", "/v1/me/articles", "/v1/feed"):
            nowhere = await c.get(path, params={"cursor": "abc"}, headers=reader.auth)
            assert nowhere.status_code == 404, (path, nowhere.text)
        # The tags show nothing of an account: not waited for, not stale.
        tags = await c.get("/v1/tags", headers=reader.auth)
        assert tags.status_code == 200, tags.text
        assert "bloghub-stale" not in tags.headers
        async with projecting(s):
            shown = await once_caught_up(lambda: c.get(detail, headers=after))
            assert shown.status_code == 200, shown.text


async def test_a_list_of_the_caller_s_own_things_waits_for_their_account_only_if_shown(
    run_id: str,
) -> None:
    """A reader's account change no projector has applied: the lists that show nothing of
    the account (drafts, collections, the feed) answer without waiting for it;
    one that may show it (a collection holding the reader's own article) says it may be
    stale."""
    async with site(run_id, "ownlists") as (s, c):
        async with projecting(s):
            _, reader, _ = await _published(c)
            own = await draft(c, reader)
            publish = f"/v1/articles/{own}/publish"
            assert (await once_caught_up(lambda: c.post(publish, headers=reader.auth))).is_success
            made = await c.post("/v1/collections", json={"name": "mine"}, headers=reader.auth)
            assert made.status_code == 201, made.text
            box = made.json()["collection"]["id"]
            entry = f"/v1/collections/{box}/articles/{own}"
            assert (await once_caught_up(lambda: c.put(entry, headers=reader.auth))).is_success
            listed = f"/v1/collections/{box}/articles"
            settled = await once_caught_up(lambda: c.get(listed, headers=reader.auth))
            assert [a["id"] for a in settled.json()["articles"]] == [own]
        # No projector runs: the account change is in the log only.
        changed = await c.patch("/v1/users/me", json={"about_me": "later"}, headers=reader.auth)
        assert changed.status_code == 200, changed.text
        for path in (
            "/v1/me/articles",
            f"/v1/me/articles/{own}",
            "/v1/me/collections",
            "/v1/feed",
        ):
            answer = await c.get(path, headers=reader.auth)
            assert answer.status_code == 200, (path, answer.text)
            assert "bloghub-stale" not in answer.headers, path
        mine = await c.get("/v1/me/articles", headers=reader.auth)
        assert own in [a["id"] for a in mine.json()["articles"]]
        shown = await c.get(listed, headers=reader.auth)
        assert shown.status_code == 200, shown.text
        assert shown.headers.get("bloghub-stale") == "true"
        assert [a["id"] for a in shown.json()["articles"]] == [own]


async def test_a_change_waits_for_the_caller_s_last_write_however_long_ago_it_was(
    run_id: str,
) -> None:
    """Reads wait for a caller's own write only ``own_write_ttl_s`` after it (a second
    here); a change waits for it for a day. An unfollow decided on a read model that has
    not applied the follow made before it was answered 200 and recorded nothing."""
    async with (
        isolated(run_id, "longown", read_wait_s=0.3, own_write_ttl_s=1) as s,
        serve(s) as live,
        httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=10) as c,
    ):
        async with projecting(s):
            followed, follower = await someone(c), await someone(c)
            people = f"/v1/users/{followed.id}/followers"
            assert (await once_caught_up(lambda: c.get(people))).json()["users"] == []
        follow = f"/v1/users/{followed.id}/follow"
        # No projector runs: the follow is in the log only.
        assert (await c.put(follow, headers=follower.auth)).status_code == 200
        await asyncio.sleep(s.own_write_ttl_s + 0.5)
        early = await c.delete(follow, headers=follower.auth)
        assert _retry_later(early), (early.status_code, early.text)
        async with projecting(s):
            undone = await once_caught_up(lambda: c.delete(follow, headers=follower.auth))
            assert undone.status_code == 200, undone.text

            async def gone() -> bool:
                return bool((await c.get(people)).json()["users"] == [])

            await wait_until(gone, timeout_s=30)


async def test_a_position_naming_a_partition_the_log_lacks_is_refused(run_id: str) -> None:
    """A position naming a partition the topic does not have (one sealed with this
    deployment's key before its topics were made again with fewer partitions) lies beyond
    the log, like an offset past a partition's end. Once, the broker was asked about it and
    never answered: the read waited for its whole bound, then said it was stale (a lookup
    said 503, to retry for ever)."""
    async with (
        isolated(run_id, "askbound", read_wait_s=1.0) as s,
        serve(s) as live,
        httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=10) as c,
    ):
        nowhere = Position({(topic_for(s.prefix, Family.ARTICLES), 99): 1})
        after = {"bloghub-after": live.container.positions.seal(nowhere)}
        for path in ("/v1/tags", f"/v1/articles/{new_id_str()}"):
            answer = await c.get(path, headers=after)
            assert answer.status_code == 400, answer.text
            assert "beyond the end of the log" in answer.json()["error"]["message"]
        conduit = await c.get("/api/tags", headers=after)
        assert conduit.status_code == 422, conduit.text


async def test_a_profile_is_never_shown_by_a_name_its_account_gave_up(run_id: str) -> None:
    """X renames itself and Y takes X's old name while no projector runs: the profile of
    either name waits for the renames (503 to retry), never shows X by the name Y now
    holds; nor is Y found by its id any more, which stopped being its name when it took
    one. Once applied, each name shows its holder."""
    async with site(run_id, "renamed") as (s, c):
        old, new = unique_name("alice"), unique_name("carol")

        async def rename(who: Author, name: str) -> httpx.Response:
            me = "/v1/users/me"
            return await once_caught_up(
                lambda: c.patch(me, json={"nickname": name}, headers=who.auth)
            )

        async with projecting(s):
            x, y = await someone(c), await someone(c)
            assert (await rename(x, old)).status_code == 200
            shown = await once_caught_up(lambda: c.get(f"/api/profiles/{old}"))
            assert shown.json()["profile"]["username"] == old

        assert (await rename(x, new)).status_code == 200
        assert (await rename(y, old)).status_code == 200
        for name in (old, new):
            early = await c.get(f"/api/profiles/{name}")
            assert _retry_later(early), (name, early.status_code, early.text)
        by_id = await c.get(f"/api/profiles/{y.id}")
        assert by_id.status_code == 404, by_id.text

        async with projecting(s, "users"):
            for name in (old, new):
                shown = await once_caught_up(partial(c.get, f"/api/profiles/{name}"))
                assert shown.status_code == 200, shown.text
                assert shown.json()["profile"]["username"] == name


async def test_a_new_sms_account_is_waited_for_never_said_missing(
    run_id: str, gateway: Gateway
) -> None:
    """An SMS login makes the account and signs it in at once; until the users projector
    applies the account, its own profile, a change of it and a phone binding answer 503
    to retry, not 404 "no such user"."""
    async with isolated(run_id, "smsnew", read_wait_s=0.3) as s, site_with_sms(s, gateway) as sms:
        phone = new_phone()
        assert (await sms.ask(phone)).status_code == 200
        signed_in = await sms.log_in(phone, code_sent_to(gateway, phone))
        assert signed_in.status_code == 200, signed_in.text
        auth = {"authorization": f"Bearer {signed_in.json()['access_token']}"}
        for early in (
            await sms.client.get("/v1/users/me", headers=auth),
            await sms.client.patch("/v1/users/me", json={"about_me": "hi"}, headers=auth),
        ):
            assert _retry_later(early), (early.status_code, early.text)
        # The profile shows the unread notifications count too: settled once both apply it.
        async with projecting(s, "users", "notifications"):
            me = await once_caught_up(partial(sms.client.get, "/v1/users/me", headers=auth))
            assert me.status_code == 200, me.text
            assert me.json()["user"]["phone"] == f"+86{phone}"


async def test_a_follower_newer_than_the_users_read_model_is_never_shown_as_erased(
    run_id: str, gateway: Gateway
) -> None:
    """A new SMS account follows someone at once: while the users projector has not
    applied the account, the followers list is 503 to retry (it was 200 with the follower
    shown ``deleted: true``); once applied, the follower is listed as they are."""
    async with isolated(run_id, "newfan", read_wait_s=0.3) as s, site_with_sms(s, gateway) as sms:
        c = sms.client
        async with projecting(s):
            followed = await someone(c)
        phone = new_phone()
        assert (await sms.ask(phone)).status_code == 200
        signed_in = await sms.log_in(phone, code_sent_to(gateway, phone))
        assert signed_in.status_code == 200, signed_in.text
        auth = {"authorization": f"Bearer {signed_in.json()['access_token']}"}
        people = f"/v1/users/{followed.id}/followers"
        async with projecting(s, "social"):
            follow = await c.put(f"/v1/users/{followed.id}/follow", headers=auth)
            assert follow.status_code == 200, follow.text

            async def applied() -> bool:
                page = await c.get(people)
                return page.status_code != 200 or bool(page.json()["users"])

            await wait_until(applied, timeout_s=30)
            early = await c.get(people)
            assert _retry_later(early), (early.status_code, early.text)
        async with projecting(s, "users", "social"):
            shown = await once_caught_up(lambda: c.get(people))
            assert shown.status_code == 200, shown.text
            (fan,) = shown.json()["users"]
            assert (fan["id"], fan["deleted"]) == (signed_in.json()["user"]["id"], False)


async def test_an_erase_code_to_a_phone_just_given_up_proves_nothing_while_it_lags(
    run_id: str, gateway: Gateway
) -> None:
    """An erase code was sent to the account's phone; the account then moved to another
    phone, which no projector has applied. The code to the phone given up erased the
    account (the stale row still named it); it is now 503 to retry, then 401."""
    async with isolated(run_id, "rebind", read_wait_s=0.3) as s, site_with_sms(s, gateway) as sms:
        c, old, new = sms.client, new_phone(), new_phone()
        async with projecting(s):
            assert (await sms.ask(old)).status_code == 200
            signed_in = await sms.log_in(old, code_sent_to(gateway, old))
            assert signed_in.status_code == 200, signed_in.text
            token = signed_in.json()["access_token"]
            auth = {"authorization": f"Bearer {token}"}
            assert (await once_caught_up(lambda: c.get("/v1/users/me", headers=auth))).is_success
            assert (await sms.ask(old, "erase", token=token)).status_code == 200
            erase = {"code": code_sent_to(gateway, old)}
        # No projector runs: the move to the new phone is in the log only.
        assert (await sms.ask(old, "owner", token=token)).status_code == 200
        owner = code_sent_to(gateway, old)
        assert (await sms.ask(new, "bind", token=token)).status_code == 200
        moved = await c.post(
            "/v1/users/me/phone",
            json={"phone": new, "code": code_sent_to(gateway, new), "current_phone_code": owner},
            headers=auth,
        )
        assert moved.status_code == 200, moved.text
        early = await c.request("DELETE", "/v1/users/me", json=erase, headers=auth)
        assert _retry_later(early), (early.status_code, early.text)
        async with projecting(s):
            late = await once_caught_up(
                lambda: c.request("DELETE", "/v1/users/me", json=erase, headers=auth)
            )
            assert late.status_code == 401, late.text
            assert (await c.get("/v1/users/me", headers=auth)).status_code == 200


async def test_a_reply_sent_with_its_parent_s_delete_is_never_answered_201_to_be_dropped(
    run_id: str,
) -> None:
    """Replies sent at once with the delete of the comment they reply to. Each one answered
    201 is in the log before the delete, so it went with the deleted thread; one after it
    would be dropped by the projector (its parent gone) with no word to its writer. The
    others are refused (422), or told to retry (409 while the thread is busy, 503)."""
    async with site(run_id, "replyrace") as (s, c):
        accepted: dict[str, list[str]] = {}
        async with projecting(s):
            _, reader, article_id = await _published(c)
            repliers = [await someone(c) for _ in range(4)]
            comments = f"/v1/articles/{article_id}/comments"
            for _ in range(3):
                post = partial(c.post, comments, json={"content": "root"}, headers=reader.auth)
                root = (await once_caught_up(post)).json()["comment"]["id"]

                async def shown(root: str = root) -> bool:
                    seen = await c.get(comments)
                    return seen.status_code == 200 and root in seen.text

                await wait_until(shown, timeout_s=30)
                deleted, *replies = await asyncio.gather(
                    c.delete(f"/v1/comments/{root}", headers=reader.auth),
                    *(
                        c.post(comments, json={"content": "re", "parent_id": root}, headers=r.auth)
                        for r in repliers
                    ),
                )
                assert deleted.status_code == 204, deleted.text
                for answer in replies:
                    assert answer.status_code in (201, 409, 422, 503), answer.text
                accepted[root] = [
                    a.json()["comment"]["id"] for a in replies if a.status_code == 201
                ]
        at: dict[tuple[str, str], int] = {}
        for record in await read_topic(s, topic_for(s.prefix, Family.COMMENTS)):
            envelope = decode(record.value)
            at[(envelope.type, envelope.payload["comment_id"])] = record.offset
        for root, replies_ids in accepted.items():
            deleted_at = at[("comment.deleted", root)]
            for reply in replies_ids:
                assert at[("comment.posted", reply)] < deleted_at, (root, reply)


async def test_no_reply_lands_on_a_comment_whose_delete_was_answered(run_id: str) -> None:
    """Another reader replies after the comment's delete was answered, the projectors
    behind: 503 to retry (as a like of a withdrawn article), never 201 for a reply that
    the delete then drops; once applied, 422. Nor does a reply under a deleted comment,
    whatever its depth (a delete takes the subtree)."""
    async with site(run_id, "unreply") as (s, c):
        comments = ""
        async with projecting(s):
            author, reader, article_id = await _published(c)
            late, third = await someone(c), await someone(c)
            comments = f"/v1/articles/{article_id}/comments"

            async def comment(body: dict[str, str], by: Author = reader) -> str:
                posted = await once_caught_up(partial(c.post, comments, json=body, headers=by.auth))
                assert posted.status_code == 201, posted.text
                return str(posted.json()["comment"]["id"])

            first = await comment({"content": "first"})
            reply = await comment({"content": "reply", "parent_id": first})
            other = await comment({"content": "other"})
            middle = await comment({"content": "middle", "parent_id": other}, by=third)
            leaf = await comment({"content": "leaf", "parent_id": middle})
            for who in (author, late, third):  # every read model has their own writes
                seen = await once_caught_up(partial(c.get, comments, headers=who.auth))
                assert seen.status_code == 200, seen.text

        # No projector runs from here: the deletes are in the log only. Each deleter has
        # one change in flight: the article's author, and two comments' authors.
        for gone, by in ((first, author), (middle, third)):
            deleted = await c.delete(f"/v1/comments/{gone}", headers=by.auth)
            assert deleted.status_code == 204, deleted.text
        for parent in (first, reply, middle, leaf):
            early = await c.post(
                comments, json={"content": "too late", "parent_id": parent}, headers=late.auth
            )
            assert _retry_later(early), (parent, early.status_code, early.text)
        # A reply where nothing was deleted still lands at once.
        kept = await c.post(
            comments, json={"content": "fine", "parent_id": other}, headers=late.auth
        )
        assert kept.status_code == 201, kept.text

        async with projecting(s):
            for parent in (first, reply, middle, leaf):
                body = {"content": "too late", "parent_id": parent}
                refused = await once_caught_up(
                    partial(c.post, comments, json=body, headers=late.auth)
                )
                assert refused.status_code == 422, refused.text
