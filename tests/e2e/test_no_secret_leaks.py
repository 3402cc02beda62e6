"""A users event that fails in the projector leaves no secret behind: not in the
dead-letter headers, not in the projector's log, not on the ops page."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from bloghub.events.base import envelop
from bloghub.events.log import EventLog
from bloghub.events.topics import DLQ, topic_for
from bloghub.events.users import PasswordChanged
from bloghub.projections.dead_letters import dlq_count_key
from bloghub.settings import Settings
from tests.conftest import isolated, read_topic, serve
from tests.support import projector_process, wait_until

SECRET = "S3CRET-HASH-BODY-never-to-be-seen"
HASH = f"$argon2id$v=19$m=65536,t=3,p=4$c2FsdC1zYWx0LXNhbHQ${SECRET}"


async def _append_poison(settings: Settings) -> None:
    """A password change naming no valid account id: the users projector's update fails
    on it alone, with the new hash among the statement's parameters."""
    log = EventLog.from_settings(settings)
    await log.start()
    try:
        event = PasswordChanged(user_id="not-a-uuid", password_hash=HASH, via="password")
        await log.append([envelop(event, actor_id=None, request_id=None)])
    finally:
        await log.close()


async def _dead_lettered(settings: Settings, client: httpx.AsyncClient) -> str:
    """The ops snapshot once it lists the dead letter, as the dashboard would show it."""
    auth = {"authorization": f"Bearer {settings.operator_token.get_secret_value()}"}
    for _ in range(300):
        answer = await client.get("/ops/api/lag", headers=auth)
        if answer.status_code == 200 and answer.json()["dead_letters"]["latest"]:
            return answer.text
        await asyncio.sleep(0.1)
    raise AssertionError("the dead letter never showed on the ops page")


async def test_a_failing_users_event_leaks_no_hash(run_id: str, tmp_path: Path) -> None:
    log_file = tmp_path / "users.log"
    async with (
        isolated(run_id, "leaks", ops_sample_every_s=0.2) as own,
        serve(own) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        await _append_poison(own)
        worker = projector_process(own, "users", log_file=log_file)
        try:

            async def counted() -> bool:
                return bool(await live.container.redis.get(dlq_count_key(own.prefix, "users")))

            await wait_until(counted)
            page = await _dead_lettered(own, client)
        finally:
            worker.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.wait, 30)
        letters = await read_topic(own, topic_for(own.prefix, DLQ))

    assert len(letters) == 1
    headers = {key: value.decode("utf-8", "replace") for key, value in letters[0].headers}
    assert "not-a-uuid" in headers["error"]  # the error says what went wrong …
    logged = log_file.read_text(encoding="utf-8", errors="replace")
    assert "projector.dead_letter" in logged
    assert "user.password_changed" in page
    for output in (*headers.values(), logged, page):  # … and never the hash
        assert SECRET not in output
        assert "$argon2id$" not in output
