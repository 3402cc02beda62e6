from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bloghub.auth.wechat import (
    StateCookie,
    WeChatClient,
    WeChatConfig,
    WeChatIdentity,
    WeChatUnavailable,
    _identity,
    new_state,
)
from bloghub.errors import InvalidInput, Unauthorized

SECRET = "s" * 40
NOW = 1_700_000_000.0


REDIRECT = "https://blog.example.com/v1/auth/wechat/callback?next=/a b&x=1"


def config() -> WeChatConfig:
    return WeChatConfig(
        appid="wx0123456789abcdef",
        secret="0123456789abcdef0123456789abcdef",
        authorize_url="https://open.weixin.qq.com/connect/qrconnect",
        token_url="https://api.weixin.qq.com/sns/oauth2/access_token",
        redirect_uri=REDIRECT,
        timeout_s=2.0,
    )


def test_new_state_is_random_hex_of_at_least_128_bits() -> None:
    states = {new_state() for _ in range(100)}
    assert len(states) == 100
    for state in states:
        assert len(state) * 4 >= 128
        assert state.isalnum()
        assert state.isascii()


def test_sealed_state_opens_for_the_same_state_until_it_expires() -> None:
    cookies = StateCookie(SECRET, ttl_s=600)
    state = new_state()
    value = cookies.seal(state, now=NOW)
    cookies.open(value, state, now=NOW)
    cookies.open(value, state, now=NOW + 599)
    with pytest.raises(Unauthorized, match="expired"):
        cookies.open(value, state, now=NOW + 600)


def test_a_changed_cookie_is_refused() -> None:
    cookies = StateCookie(SECRET)
    state = new_state()
    value = cookies.seal(state, now=NOW)
    sealed_state, expires, mac = value.split(".")
    flipped = ("0" if mac[0] != "0" else "1") + mac[1:]
    for forged in (
        f"{sealed_state}.{expires}.{flipped}",
        f"{sealed_state}.{int(expires) + 3600}.{mac}",  # stretching the lifetime
        f"{new_state()}.{expires}.{mac}",
    ):
        with pytest.raises(Unauthorized, match="signature"):
            cookies.open(forged, forged.split(".")[0], now=NOW)


def test_a_cookie_sealed_with_another_secret_is_refused() -> None:
    state = new_state()
    value = StateCookie("t" * 40).seal(state, now=NOW)
    with pytest.raises(Unauthorized, match="signature"):
        StateCookie(SECRET).open(value, state, now=NOW)


def test_the_key_is_derived_so_the_raw_secret_does_not_sign_states() -> None:
    state = new_state()
    _, expires, mac = StateCookie(SECRET).seal(state, now=NOW).split(".")
    raw = hmac.new(SECRET.encode(), f"{state}|{expires}".encode(), hashlib.sha256).hexdigest()
    assert mac != raw


def test_a_different_state_is_refused_as_a_mismatch() -> None:
    cookies = StateCookie(SECRET)
    value = cookies.seal(new_state(), now=NOW)
    with pytest.raises(Unauthorized, match="does not match"):
        cookies.open(value, new_state(), now=NOW)


@pytest.mark.parametrize("cookie", [None, ""])
def test_a_missing_cookie_is_refused(cookie: str | None) -> None:
    with pytest.raises(Unauthorized, match="cookie is missing"):
        StateCookie(SECRET).open(cookie, new_state(), now=NOW)


@pytest.mark.parametrize("state", [None, ""])
def test_a_missing_state_is_refused(state: str | None) -> None:
    cookies = StateCookie(SECRET)
    value = cookies.seal(new_state(), now=NOW)
    with pytest.raises(Unauthorized, match="no state"):
        cookies.open(value, state, now=NOW)


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage",
        "a.b.c",
        "..",
        "abc.def",
        "0123456789abcdef.\uff11\uff12\uff13.deadbeef",  # fullwidth digits, which int() takes
        "0123456789abcdef.1700000600.deadbeef.extra",
        "0123456789abcdef.-1.deadbeef",
        "0123456789abcdef.99999999999999999999.deadbeef",
        "0123456789abcdef.1700000600.\udcff",
        "é" * 40 + ".1700000600.deadbeef",
    ],
)
def test_garbage_cookies_are_refused(garbage: str) -> None:
    with pytest.raises(Unauthorized):
        StateCookie(SECRET).open(garbage, "0123456789abcdef", now=NOW)


def test_garbage_state_against_a_good_cookie_is_refused() -> None:
    cookies = StateCookie(SECRET)
    value = cookies.seal(new_state(), now=NOW)
    for state in ("x", "\udcff" * 20, "é" * 48, "a" * 10_000):
        with pytest.raises(Unauthorized):
            cookies.open(value, state, now=NOW)


def test_seal_refuses_states_wechat_would_not_hand_back() -> None:
    with pytest.raises(ValueError, match="state"):
        StateCookie(SECRET).seal("with-dash_and_underscore")


async def test_auth_url_carries_exactly_the_qrconnect_parameters() -> None:
    cfg = config()
    state = new_state()
    async with httpx.AsyncClient() as http:
        url = WeChatClient(cfg, http).auth_url(state)

    assert url.endswith("#wechat_redirect")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == cfg.authorize_url
    assert parts.fragment == "wechat_redirect"
    assert parse_qs(parts.query, keep_blank_values=True, strict_parsing=True) == {
        "appid": [cfg.appid],
        "redirect_uri": [cfg.redirect_uri],
        "response_type": ["code"],
        "scope": ["snsapi_login"],
        "state": [state],
    }
    # The redirect URI is one opaque, fully percent-encoded value, not a second query.
    raw = dict(pair.split("=", 1) for pair in parts.query.split("&"))
    assert raw["redirect_uri"] == (
        "https%3A%2F%2Fblog.example.com%2Fv1%2Fauth%2Fwechat%2Fcallback%3Fnext%3D%2Fa%20b%26x%3D1"
    )


async def test_malformed_codes_are_refused_before_any_request() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.url.path}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        client = WeChatClient(config(), http)
        for code in ("", "a" * 257, "has space", "semi;colon", "ü", "a&secret=x"):
            with pytest.raises(InvalidInput):
                await client.exchange(code)


def test_what_wechat_says_of_a_refused_code_is_quoted_only_as_text() -> None:
    """A refusal's errmsg reached the client as a Python repr when it was not text; an
    errcode that is not a number is WeChat's fault (503), not the code's (401)."""
    with pytest.raises(Unauthorized, match=r"refused the code: no message$"):
        _identity({"errcode": 40029, "errmsg": {"a": 1}})
    with pytest.raises(Unauthorized, match=r"refused the code: invalid code$"):
        _identity({"errcode": 40029, "errmsg": "invalid code"})
    for errcode in ("40029", None, True, 1.5):
        with pytest.raises(WeChatUnavailable, match="errcode that is not a number"):
            _identity({"errcode": errcode})
    assert _identity({"openid": "o-1"}) == WeChatIdentity("o-1", None)
