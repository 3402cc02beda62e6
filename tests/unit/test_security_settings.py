"""Settings that security rests on fail fast when mistyped, rather than trusting nobody
(or everybody) in silence."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bloghub.settings import Settings


def test_trusted_proxies_take_addresses_and_networks() -> None:
    s = Settings(trusted_proxies=["10.0.0.0/8", "127.0.0.1", "::1"])
    assert s.trusted_proxies == ["10.0.0.0/8", "127.0.0.1", "::1"]


@pytest.mark.parametrize("entry", ["proxy.internal", "10.0.0.0/33", "*", ""])
def test_a_trusted_proxy_that_is_not_an_address_is_refused(entry: str) -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies=[entry])


@pytest.mark.parametrize("code", ["+86", "086", "1234", "", "\uff18\uff16"])
def test_a_country_code_must_be_one_to_three_digits(code: str) -> None:
    with pytest.raises(ValidationError, match="sms_country_codes"):
        Settings(sms_country_codes=[code])


def test_codes_go_to_mainland_china_unless_configured() -> None:
    assert Settings().sms_country_codes == ["86"]
