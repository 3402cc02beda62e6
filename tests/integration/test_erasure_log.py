"""Crypto-shredding on the real log: personal data never sits in the users topic in clear,
and once a person is erased a replay of the users projector rebuilds them as erased while
everyone else comes back whole."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
import httpx

from bloghub.commands.context import Caller
from bloghub.commands.users import bind_phone
from bloghub.events.base import envelop
from bloghub.events.topics import Family, topic_for
from bloghub.events.users import SessionStarted
from bloghub.ids import new_id_str
from bloghub.projections.users import UsersProjector
from bloghub.settings import Settings
from tests.conftest import LiveServer, isolated, projecting, read_topic, serve
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.support import applied, replay_generation, wait_until

NEW_PASSWORD = "n3w-s3cret-Pass!"


async def user_row(settings: Settings, generation: int, user_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        row = await conn.fetchrow(
            f"SELECT * FROM users_g{generation}.users WHERE id = $1::uuid", user_id
        )
        live = await conn.fetchval(
            f"SELECT count(*) FROM users_g{generation}.sessions "
            "WHERE user_id = $1::uuid AND revoked_at IS NULL",
            user_id,
        )
    finally:
        await conn.close()
    assert row is not None
    return {**dict(row), "live_sessions": live}


async def caught_up(settings: Settings) -> int:
    """Wait until the users projector has applied the whole users topic; its length."""
    records = await read_topic(settings, topic_for(settings.prefix, Family.USERS))

    async def done() -> bool:
        return await applied(settings, "users") >= len(records)

    await wait_until(done)
    return len(records)


async def person(
    live: LiveServer, client: httpx.AsyncClient, tag: str
) -> tuple[str, str, dict[str, str]]:
    """An account with every kind of personal data: (user id, access token, the data)."""
    data = {
        "email": f"{tag}-{secrets.token_hex(4)}@example.com",
        "phone": f"+86138{secrets.randbelow(10**8):08d}",
        "nickname": f"nick-{secrets.token_hex(4)}",
        "about_me": f"about-{secrets.token_hex(4)}",
    }
    assert (await client.post("/v1/users", json=signup_body(data["email"]))).status_code == 201
    login = await client.post("/v1/auth/login", json={"email": data["email"], "password": PASSWORD})
    assert login.status_code == 200, login.text
    user_id, token = login.json()["user"]["id"], login.json()["access_token"]
    auth = {"authorization": f"Bearer {token}"}
    profile = {"nickname": data["nickname"], "about_me": data["about_me"]}
    assert (await client.patch("/v1/users/me", json=profile, headers=auth)).status_code == 200
    await bind_phone(
        live.container.commands,
        Caller(user_id, None),
        user_id=user_id,
        phone=data["phone"],
    )
    return user_id, token, data


async def test_the_log_never_holds_personal_data_and_a_replay_rebuilds_the_erased(
    run_id: str,
) -> None:
    async with (
        isolated(run_id, "shred") as s,
        projecting(s, "users"),
        serve(s) as live,
        httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=10) as client,
    ):
        gone, token, secrets_of_gone = await person(live, client, "gone")
        kept, _, secrets_of_kept = await person(live, client, "kept")
        await caught_up(s)
        hashes = [(await user_row(s, 1, gone))["password_hash"]]
        change = {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        }
        auth = {"authorization": f"Bearer {token}"}
        changed = await client.post("/v1/users/me/password", json=change, headers=auth)
        assert changed.status_code == 204, changed.text
        await caught_up(s)
        hashes.append((await user_row(s, 1, gone))["password_hash"])
        assert all(h and h.startswith("$argon2") for h in hashes)

        erased = await client.request(
            "DELETE", "/v1/users/me", json={"password": NEW_PASSWORD}, headers=auth
        )
        assert erased.status_code == 204, erased.text
        # A login that raced the erasure (past the command's check before the tombstone was
        # written), recorded after it, must not give a live session.
        late = SessionStarted(
            user_id=gone,
            session_id=new_id_str(),
            method="password",
            ua_hash="ua",
            refresh_jti=new_id_str(),
        )
        await live.container.event_log.append([envelop(late, actor_id=gone, request_id=None)])
        length = await caught_up(s)

        needles = [*secrets_of_gone.values(), *secrets_of_kept.values(), *hashes]
        for record in await read_topic(s, topic_for(s.prefix, Family.USERS)):
            stored = (record.key or b"") + record.value + b"".join(v for _, v in record.headers)
            for needle in needles:
                assert needle.encode() not in stored, "personal data in the log in clear"

        live_row = await user_row(s, 1, gone)
        assert live_row["erased_at"] is not None
        assert live_row["live_sessions"] == 0

        await replay_generation(s, UsersProjector, 2, until=length)
        rebuilt = await user_row(s, 2, gone)
        for column in ("email", "password_hash", "phone", "nickname", "about_me"):
            assert rebuilt[column] is None, column
        assert rebuilt["erased_at"] is not None
        assert rebuilt["live_sessions"] == 0
        other = await user_row(s, 2, kept)
        assert other["email"] == secrets_of_kept["email"]
        assert other["phone"] == secrets_of_kept["phone"]
        assert other["nickname"] == secrets_of_kept["nickname"]
        assert other["erased_at"] is None
        assert other["live_sessions"] == 1
