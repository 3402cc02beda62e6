"""What callers see while a projector lags. Public reads honour read-your-writes too:
``Bloghub-After``, or the caller's own last write, makes the listing, the tag counts and a
public profile wait for the projector (and say ``Bloghub-Stale: true`` if it did not get
there in time); anyone else reads at once. A command never decides on a state older than
the caller's own last write: it asks them to come back (503 catching_up).

The projectors are started and stopped by hand here, so "not yet projected" is a state the
test holds, not a race it hopes to win."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from bloghub.adapters.postgres.generations import read_model_in
from bloghub.adapters.redis import make_redis
from bloghub.projections.dead_letters import dlq_count_key
from bloghub.settings import Settings
from tests.conftest import LiveServer, isolated, pg, projecting, serve
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.e2e.test_sessions import bearer
from tests.support import once_caught_up, wait_until

STALE = "bloghub-stale"


@dataclass(frozen=True)
class Site:
    settings: Settings
    live: LiveServer
    client: httpx.AsyncClient


@contextlib.asynccontextmanager
async def site(run_id: str, name: str, **overrides: object) -> AsyncIterator[Site]:
    """A database, prefix and API of its own, with no projector running yet."""
    async with (
        isolated(run_id, name, **{"read_wait_s": 0.3, **overrides}) as own,
        serve(own) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        yield Site(own, live, client)


async def login_once_projected(client: httpx.AsyncClient, email: str) -> httpx.Response:
    """Log in, coming back while the answer is 503 catching_up, as a client should."""
    body = {"email": email, "password": PASSWORD}
    return await once_caught_up(lambda: client.post("/v1/auth/login", json=body))


async def logged_in(client: httpx.AsyncClient, email: str) -> tuple[str, dict[str, str]]:
    assert (await client.post("/v1/users", json=signup_body(email))).status_code == 201
    answer = await login_once_projected(client, email)
    assert answer.status_code == 200, answer.text
    return answer.json()["user"]["id"], bearer(answer.json()["access_token"])


async def settled_account(at: Site, email: str) -> dict[str, str]:
    """A signed-up, logged-in account the users projector has applied: its bearer header."""
    async with projecting(at.settings, "users", "notifications"):
        _, auth = await logged_in(at.client, email)
        await eventually_fresh(at.client, "/v1/users/me", **auth)
    return auth


async def eventually_fresh(client: httpx.AsyncClient, path: str, **headers: str) -> httpx.Response:
    for _ in range(100):
        answer = await client.get(path, headers=headers)
        if answer.status_code == 200 and STALE not in answer.headers:
            return answer
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} stayed stale")


async def test_listing_and_tags_wait_for_the_position_they_are_given(run_id: str) -> None:
    async with site(run_id, "ryw_articles") as at:
        own, client = at.settings, at.client
        tag = f"ryw-{run_id}"
        async with projecting(own, "users", "articles", "interactions"):
            _, auth = await logged_in(client, f"ryw-a-{run_id}@example.com")
            made = await client.post(
                "/v1/articles", json={"title": "Fresh", "tags": [tag]}, headers=auth
            )
            article_id = made.json()["article"]["id"]
            # The draft is projected (a projector just started may take a moment).
            mine = await eventually_fresh(client, f"/v1/me/articles/{article_id}", **auth)
            assert mine.json()["article"]["id"] == article_id

        # No projector runs now: the publish is in the log, not in the read model.
        published = await client.post(f"/v1/articles/{article_id}/publish", headers=auth)
        assert published.status_code == 200, published.text
        after = {"bloghub-after": published.headers["bloghub-position"]}
        for path in (f"/v1/articles?tag={tag}", "/v1/tags"):
            waited = await client.get(path, headers=after)
            assert waited.status_code == 200
            assert waited.headers.get(STALE) == "true", path  # said, not hidden
            own_write = await client.get(path, headers=auth)
            assert own_write.headers.get(STALE) == "true", path
            anyone = await client.get(path)
            assert STALE not in anyone.headers, path  # others do not wait
        listed = await client.get(f"/v1/articles?tag={tag}", headers=after)
        assert listed.json()["articles"] == []

        async with projecting(own, "articles", "interactions"):
            listed = await eventually_fresh(client, f"/v1/articles?tag={tag}", **after)
            assert [a["id"] for a in listed.json()["articles"]] == [article_id]
            counts = (await eventually_fresh(client, "/v1/tags", **after)).json()["tags"]
            assert {"tag": tag, "articles": 1} in counts


async def test_a_public_profile_read_by_its_owner_waits_for_their_change(run_id: str) -> None:
    async with site(run_id, "ryw_profile") as at:
        own, client = at.settings, at.client
        async with projecting(own, "users"):
            user_id, auth = await logged_in(client, f"ryw-p-{run_id}@example.com")
            first = await client.get(f"/v1/users/{user_id}")  # now in the user:info cache
            assert first.json()["user"]["nickname"] is None

        # The users projector is stopped: the change is in the log, not in the read model.
        patched = await client.patch("/v1/users/me", json={"nickname": "Ada"}, headers=auth)
        assert patched.status_code == 200, patched.text
        waited = await client.get(f"/v1/users/{user_id}", headers=auth)
        assert waited.status_code == 200
        assert waited.headers.get(STALE) == "true"  # the owner is told it is not there yet

        async with projecting(own, "users"):
            fresh = await eventually_fresh(client, f"/v1/users/{user_id}", **auth)
            assert fresh.json()["user"]["nickname"] == "Ada"


async def test_a_change_is_not_decided_on_a_state_older_than_the_authors_last_write(
    run_id: str,
) -> None:
    async with site(run_id, "lag_commands") as at:
        own, client = at.settings, at.client
        async with projecting(own, "users"):
            _, auth = await logged_in(client, f"lag-c-{run_id}@example.com")
        made = await client.post("/v1/articles", json={"title": "New"}, headers=auth)
        article_id = made.json()["article"]["id"]
        body = {"title": "Edited", "version": 1}
        # The draft is in the log only: "no such article" would be wrong, so is guessing.
        early = await client.put(f"/v1/articles/{article_id}", json=body, headers=auth)
        assert early.status_code == 503, early.text
        assert early.json()["error"]["code"] == "catching_up"
        assert early.headers["retry-after"] == "1"

        async with projecting(own, "articles", "interactions"):
            for _ in range(100):
                edited = await client.put(f"/v1/articles/{article_id}", json=body, headers=auth)
                if edited.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert edited.status_code == 200, edited.text
            assert edited.json()["article"]["version"] == 2


async def test_a_missing_table_is_waited_out_and_nothing_is_dead_lettered(run_id: str) -> None:
    """A schema behind the code is the deployment's fault, not the events': the projector
    waits for the table (callers get an answer marked stale, never 500) and applies
    everything once it is back, with no event sent to the dead-letter topic."""
    email = f"schema-{run_id}@example.com"
    async with site(run_id, "schema") as at, projecting(at.settings, "users", "notifications"):
        own, live, client = at.settings, at.live, at.client
        assert (await client.post("/v1/users", json=signup_body(email))).status_code == 201
        async with pg(own) as conn:

            async def signed_up() -> bool:
                found = "SELECT count(*) FROM users_g1.users WHERE email = $1"
                return bool(await conn.fetchval(found, email))

            # A projector just started may take seconds to be assigned its partitions.
            await wait_until(signed_up, timeout_s=60)
            await conn.execute("DROP TABLE users_g1.sessions")

        login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text  # the session is in the log
        auth = bearer(login.json()["access_token"])
        waiting = await client.get("/v1/users/me", headers=auth)
        assert waiting.status_code == 200, waiting.text  # the session store knows the session
        assert waiting.headers[STALE] == "true"  # the read model has not reached the login
        await asyncio.sleep(1.0)  # several apply attempts fail meanwhile
        redis = live.container.redis
        assert await redis.get(dlq_count_key(own.prefix, "users")) is None

        async with live.container.engine.begin() as conn:
            await conn.run_sync(read_model_in("users", "users_g1").create_all, checkfirst=True)
        me = await eventually_fresh(client, "/v1/users/me", **auth)
        assert me.json()["user"]["email"] == email
        assert await redis.get(dlq_count_key(own.prefix, "users")) is None


async def test_login_while_the_projector_lags_says_catching_up_not_wrong_password(
    run_id: str,
) -> None:
    """The account is in the log but not yet in the read model: the login is asked to come
    back (503 + Retry-After), never told its password is wrong, and never locked out."""
    email = f"lagging-{run_id}@example.com"
    async with site(run_id, "lag_login") as at:
        own, client = at.settings, at.client
        assert (await client.post("/v1/users", json=signup_body(email))).status_code == 201
        for _ in range(own.login_failures_per_account + 1):
            early = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
            assert early.status_code == 503, early.text
            assert early.json()["error"]["code"] == "catching_up"
            assert early.headers["retry-after"] == "1"
        async with projecting(own, "users"):
            answer = await login_once_projected(client, email)
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"]["email"] == email


async def test_a_password_changed_under_lag_is_never_checked_against_the_old_hash(
    run_id: str,
) -> None:
    """The change is in the log, not yet in the read model: the old password starts no
    session and the new one is not called wrong; both are asked to come back (503, not
    counted towards the lockout) until the projector gets there."""
    email = f"pw-lag-{run_id}@example.com"
    async with site(run_id, "lag_password") as at:
        own, client = at.settings, at.client
        auth = await settled_account(at, email)
        changed = await client.post(
            "/v1/users/me/password",
            json={
                "current_password": PASSWORD,
                "new_password": "Changed-pass-7",
                "confirm_password": "Changed-pass-7",
            },
            headers=auth,
        )
        assert changed.status_code == 204, changed.text
        for password in [PASSWORD, "Changed-pass-7"] * own.login_failures_per_account:
            early = await client.post("/v1/auth/login", json={"email": email, "password": password})
            assert early.status_code == 503, early.text
            assert early.json()["error"]["code"] == "catching_up"
        async with projecting(own, "users", "notifications"):
            for _ in range(100):
                fresh = await client.post(
                    "/v1/auth/login", json={"email": email, "password": "Changed-pass-7"}
                )
                if fresh.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert fresh.status_code == 200, fresh.text
            old = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
            assert old.status_code == 401, old.text


async def test_a_change_is_never_decided_on_an_account_older_than_its_own_last_change(
    run_id: str,
) -> None:
    """A password change in the log only: the old password does not prove the owner for a
    second change, an erasure or an /api change (each 503 to retry, not 204), while a
    logout still ends the session at once. Once applied, the old password is wrong."""
    email = f"pw-decide-{run_id}@example.com"
    async with site(run_id, "lag_decide") as at:
        own, client = at.settings, at.client
        auth = await settled_account(at, email)
        new = "Changed-pass-7"
        body = {"current_password": PASSWORD, "new_password": new, "confirm_password": new}
        changed = await client.post("/v1/users/me/password", json=body, headers=auth)
        assert changed.status_code == 204, changed.text
        again = {
            "current_password": PASSWORD,
            "new_password": "Third-pass-9",
            "confirm_password": "Third-pass-9",
        }
        token = auth["authorization"].removeprefix("Bearer ")
        for attempt in (
            client.post("/v1/users/me/password", json=again, headers=auth),
            client.request("DELETE", "/v1/users/me", json={"password": PASSWORD}, headers=auth),
            client.put(
                "/api/user",
                json={"user": {"bio": "later"}},
                headers={"authorization": f"Token {token}"},
            ),
        ):
            early = await attempt
            assert early.status_code == 503, early.text
            assert early.headers["retry-after"] == "1"
        me = await client.get("/v1/users/me", headers=auth)
        assert me.status_code == 200, me.text  # a read says it may be stale instead
        assert me.headers[STALE] == "true"
        out = await client.post("/v1/auth/logout", headers=auth)
        assert out.status_code == 204, out.text  # whatever the lag
        assert (await client.get("/v1/users/me", headers=auth)).status_code == 401
        async with projecting(own, "users", "notifications"):
            for _ in range(100):
                fresh = await client.post("/v1/auth/login", json={"email": email, "password": new})
                if fresh.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert fresh.status_code == 200, fresh.text
            auth = bearer(fresh.json()["access_token"])
            late = await client.post("/v1/users/me/password", json=again, headers=auth)
            assert late.status_code == 401, late.text


@pytest.mark.parametrize("route", ["v1", "api", "erase"])
async def test_the_old_password_never_works_again_however_long_the_projector_lags(
    run_id: str, route: str
) -> None:
    """The caller's own writes are remembered for ``own_write_ttl_s`` (a second here); a
    password change or an erasure is remembered until the users projector applies it, so
    the old password starts no session after that second either."""
    email = f"pw-long-{route}-{run_id}@example.com"
    async with site(run_id, f"lag_long_{route}", own_write_ttl_s=1) as at:
        own, client = at.settings, at.client
        auth = await settled_account(at, email)
        new = "Changed-pass-7"
        if route == "v1":
            body = {"current_password": PASSWORD, "new_password": new, "confirm_password": new}
            changed = await client.post("/v1/users/me/password", json=body, headers=auth)
        elif route == "api":
            token = auth["authorization"].removeprefix("Bearer ")
            changed = await client.put(
                "/api/user",
                json={"user": {"password": new}},
                headers={"authorization": f"Token {token}"},
            )
        else:
            changed = await client.request(
                "DELETE", "/v1/users/me", json={"password": PASSWORD}, headers=auth
            )
        assert changed.status_code in (200, 204), changed.text
        await asyncio.sleep(own.own_write_ttl_s + 0.5)
        old = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        # (An erased account's email is freed at once: its login may find no account.)
        refused = (401, 503) if route == "erase" else (503,)
        assert old.status_code in refused, old.text
        # Redis loses its data (a restart without persistence): the change is kept with
        # the account's key too, so the old password still starts nothing.
        redis = make_redis(own.redis_url.get_secret_value())
        try:
            await redis.delete(*[k async for k in redis.scan_iter(f"{own.prefix}:credpos:*")])
        finally:
            await redis.aclose()
        old = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert old.status_code in refused, old.text
        async with projecting(own, "users", "notifications"):
            for _ in range(100):
                old = await client.post(
                    "/v1/auth/login", json={"email": email, "password": PASSWORD}
                )
                if old.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert old.status_code == 401, old.text


async def test_a_named_position_does_not_hide_the_callers_own_writes(run_id: str) -> None:
    """A client sends Bloghub-After from its signup with the token of a login that came
    later: the read waits for the login's own session too, not only for the signup, says
    so when the wait runs out, and never calls a fresh token invalid."""
    email = f"merge-{run_id}@example.com"
    async with site(run_id, "merge") as at:
        own, client = at.settings, at.client
        created = await client.post("/v1/users", json=signup_body(email))
        after = {"bloghub-after": created.headers["bloghub-position"]}
        async with projecting(own, "users"):
            assert (await login_once_projected(client, email)).status_code == 200
        # The users projector is stopped: this login's session is in the log only.
        fresh = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        auth = {**bearer(fresh.json()["access_token"]), **after}
        early = await client.get("/v1/users/me", headers=auth)
        assert early.status_code == 200, early.text  # not 401: the token is good
        assert early.headers[STALE] == "true"  # the login is not projected yet
        async with projecting(own, "users", "notifications"):
            me = await eventually_fresh(client, "/v1/users/me", **auth)
            assert me.json()["user"]["email"] == email


async def test_a_projector_whose_connections_were_cut_goes_on(run_id: str) -> None:
    """Projectors do not ping a connection before each batch. A batch that meets a
    connection the server has cut is tried again on a fresh one: the next signup is
    projected, and nothing is dead-lettered."""
    async with site(run_id, "cut_conn") as at:
        own, client = at.settings, at.client
        async with projecting(own, "users"):
            await logged_in(client, f"before-{run_id}@example.com")
            async with pg(own) as conn:
                cut = await conn.fetchval(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                    "FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = $1",
                    "bloghub-projector",
                )
            assert cut >= 1, "the projector keeps its connections pooled between batches"
            user_id, _ = await logged_in(client, f"after-{run_id}@example.com")
            assert user_id
        redis = at.live.container.redis
        assert await redis.get(dlq_count_key(own.prefix, "users")) is None


async def test_an_article_says_stale_while_its_authors_profile_is_behind(run_id: str) -> None:
    """An article names its author: the read waits for both read models and says stale
    when the users projector has not reached the position, though the articles one has."""
    async with site(run_id, "ryw_author") as at:
        own, client = at.settings, at.client
        async with projecting(own, "users", "articles", "interactions"):
            _, auth = await logged_in(client, f"ryw-au-{run_id}@example.com")
            made = await client.post("/v1/articles", json={"title": "Mine"}, headers=auth)
            article_id = made.json()["article"]["id"]
            published = await client.post(f"/v1/articles/{article_id}/publish", headers=auth)
            after = {"bloghub-after": published.headers["bloghub-position"]}
            await eventually_fresh(client, f"/v1/articles/{article_id}", **after)

        async with projecting(own, "articles", "interactions"):  # the users projector is held back
            patched = await client.patch("/v1/users/me", json={"nickname": "Ada"}, headers=auth)
            assert patched.status_code == 200, patched.text
            after = {"bloghub-after": patched.headers["bloghub-position"]}
            read = await client.get(f"/v1/articles/{article_id}", headers=after)
            assert read.status_code == 200
            assert read.json()["article"]["author"]["nickname"] is None  # the old profile...
            assert read.headers.get(STALE) == "true"  # ...and the reader is told so
            listed = await client.get("/v1/articles", headers=after)
            assert listed.headers.get(STALE) == "true"

        async with projecting(own, "users", "articles", "interactions"):
            fresh = await eventually_fresh(client, f"/v1/articles/{article_id}", **after)
            assert fresh.json()["article"]["author"]["nickname"] == "Ada"


async def test_the_conduit_user_is_never_answered_without_the_callers_last_change(
    run_id: str,
) -> None:
    """RealWorld clients update, then read at once, with no header and no retry: while the
    change is not applied, GET and PUT /api/user are 503, never the old profile."""
    async with site(run_id, "ryw_conduit_user") as at:
        own, client = at.settings, at.client
        async with projecting(own, "users"):
            _, auth = await logged_in(client, f"ryw-c-{run_id}@example.com")
        token = {"authorization": auth["authorization"].replace("Bearer", "Token")}
        # The users projector is stopped: the change is in the log, not in the read model.
        changed = await client.put("/api/user", json={"user": {"bio": "new"}}, headers=token)
        assert changed.status_code == 200, changed.text
        read = await client.get("/api/user", headers=token)
        assert read.status_code == 503, read.text
        again = await client.put("/api/user", json={"user": {"bio": "newer"}}, headers=token)
        assert again.status_code == 503, again.text
        async with projecting(own, "users"):
            for _ in range(100):
                read = await client.get("/api/user", headers=token)
                if read.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert read.json()["user"]["bio"] == "new"
