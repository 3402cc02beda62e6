"""A users event that fails after its personal fields are opened is dead-lettered without
them: neither the dead letter (value, headers) nor any log line quotes the email or the
password hash the projector read."""

from __future__ import annotations

import pytest

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.user_keys import UserKeys
from bloghub.auth.sealing import master_key
from bloghub.events.base import envelop
from bloghub.events.log import EventLog
from bloghub.events.personal import seal_event
from bloghub.events.topics import DLQ, topic_for
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from tests.conftest import isolated, projecting, read_topic
from tests.support import applied, wait_until

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$hash-that-must-not-leak"


async def test_a_failing_sealed_event_leaks_nothing_it_held(
    run_id: str, capfd: pytest.CaptureFixture[str]
) -> None:
    async with isolated(run_id, "sealdlq") as s:
        engine = make_engine(s.sqlalchemy_url, pool_size=1)
        log = EventLog.from_settings(s)
        await log.start()
        try:
            user_id = new_id_str()
            key = await UserKeys(engine, master_key(s)).key_for(user_id)
            # PostgreSQL text cannot hold the NUL: applying it fails every time, with a
            # statement whose bound values are the opened email and hash.
            email = "must-not-leak\x00@example.com"
            event = UserRegistered(user_id=user_id, email=email, password_hash=HASH)
            await log.append([envelop(seal_event(event, key), actor_id=None, request_id=None)])
            async with projecting(s, "users"):

                async def passed() -> bool:
                    return await applied(s, "users") >= 1

                await wait_until(passed)
        finally:
            await log.close()
            await engine.dispose()

        (letter,) = await read_topic(s, topic_for(s.prefix, DLQ))
        headers = dict(letter.headers)
        assert headers["type"] == b"user.registered"
        assert b"0x00" in headers["error"], "the dead letter still says what went wrong"
        output = capfd.readouterr()
        for where in (letter.value, *headers.values(), output.out.encode(), output.err.encode()):
            assert b"must-not-leak" not in where
            assert b"hash-that-must-not-leak" not in where
