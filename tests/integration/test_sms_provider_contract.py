"""One contract for every SMS provider: the scripted fake used by unit tests and the real
HTTP provider against a loopback gateway must behave alike at the port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

import pytest

from bloghub.auth.sms.failover import Guard, GuardedProvider
from bloghub.auth.sms.providers import HttpProvider, ProviderError, ProviderTimeout, SmsProvider
from tests.fakes import Outcome, Scripted
from tests.sms_gateway import Gateway

PHONE = "+8613800138000"


@dataclass
class Subject:
    provider: SmsProvider
    set_outcome: Callable[[Outcome], None]
    delivered: Callable[[], list[tuple[str, str]]]


@pytest.fixture(params=["fake", "http"])
async def subject(request: pytest.FixtureRequest, gateway: Gateway) -> AsyncIterator[Subject]:
    if request.param == "fake":
        fake = Scripted("fake")

        def script(outcome: Outcome) -> None:
            fake.then = outcome

        yield Subject(fake, script, lambda: list(fake.sent))
        return
    http = HttpProvider(name="http", url=gateway.url, timeout_s=0.3)

    modes: dict[Outcome, Literal["ok", "fail", "hang"]] = {
        "ok": "ok",
        "fail": "fail",
        "hang": "hang",
    }

    def mode(outcome: Outcome) -> None:
        gateway.mode = modes[outcome]

    def delivered() -> list[tuple[str, str]]:
        return [(m["phone"], m["text"]) for m in gateway.received if gateway.mode == "ok"]

    yield Subject(http, mode, delivered)
    await http.aclose()


async def test_accepted_message_is_delivered_once(subject: Subject) -> None:
    subject.set_outcome("ok")
    await subject.provider.send(PHONE, "code 012345")
    assert subject.delivered() == [(PHONE, "code 012345")]


async def test_a_refusal_is_a_provider_error_not_a_timeout(subject: Subject) -> None:
    subject.set_outcome("fail")
    with pytest.raises(ProviderError) as raised:
        await subject.provider.send(PHONE, "x")
    assert not isinstance(raised.value, ProviderTimeout)
    assert raised.value.provider == subject.provider.name


async def test_a_hang_becomes_a_timeout_under_the_guard(subject: Subject) -> None:
    subject.set_outcome("hang")
    guarded = GuardedProvider(subject.provider, Guard(timeout_s=0.2, failures_to_open=10))
    with pytest.raises(ProviderTimeout):
        await guarded.send(PHONE, "x")
