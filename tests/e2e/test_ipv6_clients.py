"""An IPv6 client is its /64: rotating its source address within it (as any host with a
/64 may) neither counts it as a new reader nor gets it past a per-address limit or lock.
Client addresses come from X-Forwarded-For, trusted from loopback in the test settings."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from bloghub.events.codec import decode
from bloghub.events.topics import Family, topic_for
from bloghub.settings import Settings
from tests.conftest import LiveServer, read_topic, serve
from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_articles import Author
from tests.e2e.test_fast_reads import _held
from tests.e2e.test_interactions import published
from tests.e2e.test_local_tier import author  # noqa: F401  (a fixture)
from tests.e2e.test_lockout import WRONG, log_in, site
from tests.e2e.test_sessions import account
from tests.e2e.test_sms_abuse import site as sms_site
from tests.e2e.test_sms_login import new_phone
from tests.sms_gateway import Gateway
from tests.support import wait_until


def a_64() -> str:
    """A /64 of its own (its first four groups): per-address counts outlive a test."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}"


def at(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address, "user-agent": "bloghub-tests/1"}


@pytest.fixture
async def stack_only(settings: Settings, live_api: LiveServer) -> AsyncIterator[LiveServer]:
    """Another API process of the same deployment, answering every read through the stack."""
    async with serve(settings.model_copy(update={"fast_reads": False})) as live:
        yield live


async def _readers(settings: Settings, server: LiveServer, article_id: str) -> set[str]:
    """The readers of the article's reads that reached the log."""
    await server.container.reads.flush()
    records = await read_topic(settings, topic_for(settings.prefix, Family.INTERACTIONS))
    envelopes = (decode(r.value) for r in records)
    return {
        e.payload["reader"]
        for e in envelopes
        if e.type == "article.read" and e.aggregate_id == article_id
    }


async def _read_cnt_settles_at(server: LiveServer, article_id: str, expected: int) -> None:
    """The article's ``read_cnt`` reaches ``expected`` and no more, watched as a reader
    already counted (watching counts nothing new)."""
    url = f"{server.url}/v1/articles/{article_id}"

    async def read_cnt() -> int:
        async with httpx.AsyncClient(headers={"user-agent": "bloghub-tests/1"}) as anonymous:
            count: int = (await anonymous.get(url)).json()["article"]["read_cnt"]
        return count

    async def counted() -> bool:
        return await read_cnt() >= expected

    await wait_until(counted, timeout_s=30)
    assert await read_cnt() == expected


async def _read_from_one_64(server: LiveServer, article_id: str) -> None:
    network = a_64()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as anonymous:
        for host in ("::1", ":aaaa:bbbb:cccc:dddd", "::ffff"):
            answer = await anonymous.get(f"/v1/articles/{article_id}", headers=at(network + host))
            assert answer.status_code == 200, answer.text


async def test_hot_reads_from_addresses_of_one_64_count_one_reader(
    settings: Settings,
    client: httpx.AsyncClient,
    live_api: LiveServer,
    author: Author,  # noqa: F811
) -> None:
    article_id, _ = await published(client, author)
    await _held(live_api, article_id)  # read from loopback: one reader
    await _read_from_one_64(live_api, article_id)  # answered by the fast path
    assert len(await _readers(settings, live_api, article_id)) == 2
    await _read_cnt_settles_at(live_api, article_id, 2)


async def test_reads_through_the_stack_from_one_64_count_one_reader(
    settings: Settings,
    client: httpx.AsyncClient,
    stack_only: LiveServer,
    author: Author,  # noqa: F811
) -> None:
    article_id, after = await published(client, author)
    shown = await client.get(f"/v1/articles/{article_id}", headers={**author.auth, **after})
    assert shown.status_code == 200  # the author's own read counts nothing
    await _read_from_one_64(stack_only, article_id)
    assert len(await _readers(settings, stack_only, article_id)) == 1
    # Watched from loopback, a second reader.
    await _read_cnt_settles_at(stack_only, article_id, 2)


async def test_one_64_shares_the_anonymous_limit(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_ip_per_minute": 5})
    network = a_64()
    async with serve(limited) as live, httpx.AsyncClient(base_url=live.url) as anonymous:
        await live.container.ranking.current()
        answers = [
            await anonymous.get("/v1/ranking/hot", headers=at(f"{network}::{n + 1}"))
            for n in range(6)
        ]
        elsewhere = await anonymous.get("/v1/ranking/hot", headers=at(f"{a_64()}::1"))
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert elsewhere.status_code == 200, "another /64 is another client"


async def test_wrong_passwords_from_one_64_lock_it_for_the_account(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = await account(client, unique_email)
    network = a_64()
    for n in range(5):
        assert (await log_in(client, email, WRONG, f"{network}::{n + 1}")).status_code == 401
    guessed = await log_in(client, email, PASSWORD, f"{network}::99")
    assert guessed.status_code == 429, "a new address in the locked /64 is locked too"
    assert "x-jwt-token" not in guessed.headers
    owner = await log_in(client, email, PASSWORD, f"{a_64()}::1")
    assert owner.status_code == 200, owner.text


async def test_wrong_passwords_from_one_64_lock_it_for_every_account(
    settings: Settings, live_api: LiveServer, unique_email: Callable[[], str]
) -> None:
    async with site(settings, login_failures_per_ip=3) as client:
        network = a_64()
        for n in range(3):
            email = await account(client, unique_email)
            wrong = await log_in(client, email, WRONG, f"{network}::{n + 1}")
            assert wrong.status_code == 401
        email = await account(client, unique_email)
        refused = await log_in(client, email, PASSWORD, f"{network}::ff")
        assert refused.status_code == 429, refused.text
        assert (await log_in(client, email, PASSWORD, f"{a_64()}::1")).status_code == 200


async def test_the_owners_64_stays_known_when_their_address_changes(
    settings: Settings, live_api: LiveServer, unique_email: Callable[[], str]
) -> None:
    async with site(settings, login_failures_per_account=3, login_delay_first_s=60) as client:
        email = await account(client, unique_email)
        home = a_64()
        assert (await log_in(client, email, PASSWORD, f"{home}::1")).status_code == 200
        for _ in range(3):
            assert (await log_in(client, email, WRONG, f"{a_64()}::1")).status_code == 401
        assert (await log_in(client, email, PASSWORD, f"{a_64()}::1")).status_code == 429
        rotated = await log_in(client, email, PASSWORD, f"{home}:1234:5678:9abc:def0")
        assert rotated.status_code == 200, "the owner's new address in their /64 never waits"


async def test_one_64_may_ask_for_only_so_many_codes(
    settings: Settings, live_api: LiveServer, gateway: Gateway
) -> None:
    network = a_64()
    async with sms_site(settings, gateway, sms_codes_per_ip_per_hour=3) as s:
        for n in range(3):
            assert (await s.ask(new_phone(), ip=f"{network}::{n + 1}")).status_code == 200
        phone = new_phone()
        refused = await s.ask(phone, ip=f"{network}::ff")
        assert refused.status_code == 429, refused.text
        assert not gateway.to(f"+86{phone}")
        assert (await s.ask(phone, ip=f"{a_64()}::1")).status_code == 200
