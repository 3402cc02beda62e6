"""SMS abuse: a phone gets at most ten codes a day, one address may ask for and try only
so many codes, codes go only to allowed countries, and a refused request stores no code.
Client addresses come from X-Forwarded-For, trusted from loopback in the test settings."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bloghub.auth.hidden_names import names_key
from bloghub.auth.sms.codes import phone_key
from bloghub.settings import Settings
from tests.conftest import LiveServer, serve
from tests.e2e.test_sms_login import code_sent_to, new_phone
from tests.sms_gateway import Gateway
from tests.support import wait_until


def new_ip() -> str:
    """A documentation /64 of its own (an IPv6 client is limited per /64): per-address
    counts outlive a test."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::1"


@dataclass
class Site:
    client: httpx.AsyncClient
    gateway: Gateway
    live: LiveServer
    home: str = field(default_factory=new_ip)
    elsewhere: str = field(default_factory=new_ip)

    async def ask(
        self, phone: str, purpose: str = "login", ip: str | None = None, token: str = ""
    ) -> httpx.Response:
        signed = {"authorization": f"Bearer {token}"} if token else {}
        return await self.client.post(
            "/v1/auth/sms/code",
            json={"phone": phone, "purpose": purpose},
            headers={"x-forwarded-for": ip or self.home, **signed},
        )

    async def log_in(self, phone: str, code: str, ip: str | None = None) -> httpx.Response:
        return await self.client.post(
            "/v1/auth/sms/login",
            json={"phone": phone, "code": code},
            headers={"x-forwarded-for": ip or self.home},
        )

    async def code_stored(self, purpose: str, phone: str) -> bool:
        settings = self.live.container.settings
        named = phone_key("+86" + phone, names_key(settings.reader_hash_secret.get_secret_value()))
        key = f"{settings.prefix}:phone_code:{purpose}:{named}"
        return bool(await self.live.container.redis.exists(key))


@asynccontextmanager
async def site(settings: Settings, gateway: Gateway, **overrides: Any) -> AsyncIterator[Site]:
    configured = settings.model_copy(
        update={"sms_gateways": [gateway.url], "sms_rate_limit": 1_000, **overrides}
    )
    async with (
        serve(configured) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        yield Site(client, gateway, live)


@pytest.fixture
async def no_cooldown(
    settings: Settings, live_api: LiveServer, gateway: Gateway
) -> AsyncIterator[Site]:
    async with site(settings, gateway, sms_code_cooldown_s=0) as s:
        yield s


async def test_the_eleventh_code_to_one_phone_in_a_day_is_refused_and_not_stored(
    no_cooldown: Site,
) -> None:
    phone = new_phone()
    for _ in range(10):
        assert (await no_cooldown.ask(phone)).status_code == 200
    last = code_sent_to(no_cooldown.gateway, phone)

    refused = await no_cooldown.ask(phone, "bind", ip=no_cooldown.elsewhere)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) > 0
    assert "10 codes today" in refused.json()["error"]["message"]
    assert len(no_cooldown.gateway.to(f"+86{phone}")) == 10
    assert not await no_cooldown.code_stored("bind", phone)
    assert (await no_cooldown.log_in(phone, last)).status_code == 200, "the last code stands"


async def test_codes_go_only_to_the_countries_settings_allow(
    settings: Settings, live_api: LiveServer, gateway: Gateway
) -> None:
    us = "+14155550123"
    async with site(settings, gateway) as china_only:
        refused = await china_only.ask(us)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["fields"] == {
            "phone": "only numbers starting +86 are served"
        }
        assert not gateway.to(us)
        # A code for such a number is refused as input too (the document's pattern), not
        # called wrong and counted against the address's checks.
        unserved = {"phone": "only numbers starting +86 are served"}
        for path, body in (
            ("/v1/auth/sms/login", {"phone": us, "code": "123456"}),
            (
                "/v1/auth/password/reset",
                {"phone": us, "code": "123456", "new_password": "Passw0rd!q"},
            ),
        ):
            sent = await china_only.client.post(
                path, json=body, headers={"x-forwarded-for": china_only.home}
            )
            assert sent.status_code == 422, (path, sent.text)
            assert sent.json()["error"]["fields"] == unserved
    async with site(settings, gateway, sms_country_codes=["86", "1"]) as both:
        assert (await both.ask(us)).status_code == 200
        assert len(gateway.to(us)) == 1


async def test_one_address_may_ask_for_only_so_many_codes(
    settings: Settings, live_api: LiveServer, gateway: Gateway
) -> None:
    async with site(settings, gateway, sms_codes_per_ip_per_hour=3) as s:
        for _ in range(3):
            assert (await s.ask(new_phone())).status_code == 200
        phone = new_phone()
        refused = await s.ask(phone)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) > 0
        assert not gateway.to(f"+86{phone}")
        assert not await s.code_stored("login", phone)
        assert (await s.ask(phone, ip=s.elsewhere)).status_code == 200


async def test_one_address_may_try_only_so_many_codes(
    settings: Settings, live_api: LiveServer, gateway: Gateway
) -> None:
    async with site(settings, gateway, sms_checks_per_ip_per_hour=3) as s:
        phone = new_phone()
        assert (await s.ask(phone, ip=s.elsewhere)).status_code == 200
        code = code_sent_to(gateway, phone)
        for _ in range(3):
            assert (await s.log_in(new_phone(), "000000")).status_code == 401
        guessed = await s.log_in(phone, code)
        assert guessed.status_code == 429, "even a right code waits once the address used its tries"
        assert (await s.log_in(phone, code, ip=s.elsewhere)).status_code == 200


async def test_a_reset_code_answers_alike_whether_an_account_holds_the_phone(
    no_cooldown: Site,
) -> None:
    """The answer, its time, and the phone's daily codes tell a stranger nothing: a reset
    code is made and sent after the answer, and only to a phone an account holds."""
    held, free = new_phone(), new_phone()
    made = await no_cooldown.log_in(held, await _login_code(no_cooldown, held))
    assert made.status_code == 200, made.text
    answers = [await no_cooldown.ask(phone, "reset") for phone in (held, free)]
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"status": "sent"})] * 2

    async def delivered() -> bool:
        return len(no_cooldown.gateway.to(f"+86{held}")) == 2

    await wait_until(delivered, timeout_s=10)
    assert not no_cooldown.gateway.to(f"+86{free}")
    assert not await no_cooldown.code_stored("reset", free)
    # Strangers' reset requests use up the reset codes of the day, never the login ones.
    for _ in range(12):
        assert (await no_cooldown.ask(held, "reset", ip=no_cooldown.elsewhere)).status_code == 200
    assert (await no_cooldown.ask(held, "login")).status_code == 200


async def test_strangers_asking_for_resets_neither_use_up_nor_replace_the_owners(
    no_cooldown: Site,
) -> None:
    """A reset is asked for signed out, so anyone may name the phone; asked from where the
    owner signs in, it draws on codes of its own."""
    phone = new_phone()
    made = await no_cooldown.log_in(phone, await _login_code(no_cooldown, phone))
    assert made.status_code == 200, made.text
    texts = len(no_cooldown.gateway.to(f"+86{phone}"))
    assert (await no_cooldown.ask(phone, "reset")).status_code == 200  # the owner, at home

    async def owners_code() -> bool:
        return len(no_cooldown.gateway.to(f"+86{phone}")) == texts + 1

    await wait_until(owners_code, timeout_s=10)
    code = code_sent_to(no_cooldown.gateway, phone)
    for _ in range(12):  # a stranger, past the day's reset codes
        stranger = await no_cooldown.ask(phone, "reset", ip=no_cooldown.elsewhere)
        assert stranger.status_code == 200

    async def strangers_capped() -> bool:
        return len(no_cooldown.gateway.to(f"+86{phone}")) == texts + 11

    await wait_until(strangers_capped, timeout_s=10)
    reset = {"phone": phone, "code": code, "new_password": "Another-Secret-2"}
    # The owner's code was not replaced by the strangers' and works from the owner's address.
    done = await no_cooldown.client.post(
        "/v1/auth/password/reset", json=reset, headers={"x-forwarded-for": no_cooldown.home}
    )
    assert done.status_code == 204, done.text
    # And the owner may still ask for another, however many strangers asked.
    assert (await no_cooldown.ask(phone, "reset")).status_code == 200

    async def another() -> bool:
        return len(no_cooldown.gateway.to(f"+86{phone}")) == texts + 12

    await wait_until(another, timeout_s=10)


async def test_owner_and_erase_codes_go_only_to_the_signed_in_owners_phone(
    no_cooldown: Site,
) -> None:
    mine, theirs = new_phone(), new_phone()
    token = (await no_cooldown.log_in(mine, await _login_code(no_cooldown, mine))).json()[
        "access_token"
    ]
    other = await no_cooldown.log_in(theirs, await _login_code(no_cooldown, theirs))
    assert other.status_code == 200
    sent_before = len(no_cooldown.gateway.to(f"+86{theirs}"))
    for purpose in ("owner", "erase"):
        anonymous = await no_cooldown.ask(theirs, purpose)
        assert anonymous.status_code == 401, anonymous.text
        stranger = await no_cooldown.ask(theirs, purpose, token=token)
        assert stranger.status_code == 403, stranger.text
        assert stranger.json()["error"]["fields"] == {"phone": "not your account's phone"}
        assert (await no_cooldown.ask(mine, purpose, token=token)).status_code == 200
    assert len(no_cooldown.gateway.to(f"+86{theirs}")) == sent_before


async def _login_code(s: Site, phone: str) -> str:
    assert (await s.ask(phone)).status_code == 200
    return code_sent_to(s.gateway, phone)
