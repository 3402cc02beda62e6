"""WeChat QR login (OAuth2 ``snsapi_login``): the qrconnect URL, the signed state cookie that
ties a callback to the browser that started the login, and the code-for-openid exchange.

The routes own the cookie's attributes and the find-or-create of the user; this module only
decides whether a callback is genuine and who WeChat says the user is.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import quote, urlencode

import httpx
import orjson
import structlog

from bloghub.errors import InvalidInput, Unauthorized, Unavailable
from bloghub.logs import SELDOM

log = structlog.get_logger(__name__)

STATE_COOKIE = "bloghub_wechat_state"


class WeChatUnavailable(Unavailable):
    """WeChat did not answer usably: its outage, not one of bloghub's stores (logged as
    ``wechat.unavailable``, not ``api.store_unreachable``)."""

    retry_after_s = 1


# WeChat hands ``state`` back verbatim only for a-zA-Z0-9 values of at most 128 bytes, so the
# state is hex rather than URL-safe base64; 24 bytes give 192 bits of randomness.
_STATE_BYTES = 24
_STATE = re.compile(r"[A-Za-z0-9]{16,128}")
_CODE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_ID_MAX = 128
_ERRMSG_MAX = 200
# WeChat documents -1 as "system busy, retry later": its failure, not the user's code.
_BUSY = -1
# A different purpose label per signed thing keeps this key distinct from any other key
# derived from the same configured secret (tokens, operator sessions).
_STATE_KEY_LABEL = b"bloghub/wechat-login-state/v1"


@dataclass(frozen=True, slots=True)
class WeChatConfig:
    appid: str
    secret: str
    authorize_url: str
    token_url: str
    redirect_uri: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class WeChatIdentity:
    openid: str
    unionid: str | None


def new_state() -> str:
    return secrets.token_hex(_STATE_BYTES)


class StateCookie:
    """Seals a login state into a cookie value ``<state>.<expiry>.<hmac>`` and checks it.

    The state travels in the cookie as well as in the URL so that a callback whose state
    differs can be told apart from a forged or corrupted cookie in the error message.
    """

    def __init__(self, secret: str, ttl_s: int = 600) -> None:
        if not secret:
            raise ValueError("StateCookie needs a non-empty secret")
        if ttl_s <= 0:
            raise ValueError("StateCookie ttl_s must be positive")
        self._key = hmac.new(secret.encode(), _STATE_KEY_LABEL, hashlib.sha256).digest()
        self.ttl_s = ttl_s

    def seal(self, state: str, now: float | None = None) -> str:
        if not _STATE.fullmatch(state):
            raise ValueError("state must be 16-128 characters of [A-Za-z0-9]; use new_state()")
        expires = int(_now(now)) + self.ttl_s
        return f"{state}.{expires}.{self._mac(state, expires)}"

    def open(self, cookie_value: str | None, state: str | None, now: float | None = None) -> None:
        if not cookie_value:
            raise Unauthorized("WeChat login cookie is missing; start the login again")
        if not state:
            raise Unauthorized("WeChat callback carries no state; start the login again")
        sealed_state, expires = self._verified(cookie_value)
        if expires <= _now(now):
            raise Unauthorized("WeChat login has expired; start the login again")
        if not hmac.compare_digest(sealed_state.encode(), state.encode("utf-8", "replace")):
            raise Unauthorized("WeChat callback state does not match this browser's login")

    def _verified(self, cookie_value: str) -> tuple[str, int]:
        parts = cookie_value.split(".")
        if len(parts) != 3 or not _STATE.fullmatch(parts[0]) or not _is_digits(parts[1]):
            raise Unauthorized("WeChat login cookie is malformed; start the login again")
        sealed_state, expires = parts[0], int(parts[1])
        expected = self._mac(sealed_state, expires)
        # Checked before the expiry is trusted: an unsigned expiry means nothing.
        if not hmac.compare_digest(parts[2].encode("utf-8", "replace"), expected.encode()):
            raise Unauthorized("WeChat login cookie has a bad signature")
        return sealed_state, expires

    def _mac(self, state: str, expires: int) -> str:
        message = f"{state}|{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


class WeChatClient:
    """Talks to WeChat's open platform; the ``httpx.AsyncClient`` belongs to the caller."""

    def __init__(self, config: WeChatConfig, http: httpx.AsyncClient) -> None:
        self._config = config
        self._http = http

    def auth_url(self, state: str) -> str:
        if not _STATE.fullmatch(state):
            raise ValueError("state must be 16-128 characters of [A-Za-z0-9]; use new_state()")
        query = urlencode(
            {
                "appid": self._config.appid,
                "redirect_uri": self._config.redirect_uri,
                "response_type": "code",
                "scope": "snsapi_login",
                "state": state,
            },
            quote_via=quote,
            safe="",
        )
        return f"{self._config.authorize_url}?{query}#wechat_redirect"

    async def exchange(self, code: str) -> WeChatIdentity:
        if not _CODE.fullmatch(code):
            raise InvalidInput(
                "invalid WeChat code",
                fields={"code": "must be 1-256 characters of letters, digits, '_' or '-'"},
            )
        try:
            return _identity(await self._fetch_token(code))
        except WeChatUnavailable as exc:
            # Once per interval while it lasts, as a store's outage is said.
            if (left_out := SELDOM.due("wechat.unavailable")) is not None:
                log.warning("wechat.unavailable", error=str(exc), left_out=left_out)
            raise

    async def _fetch_token(self, code: str) -> dict[str, Any]:
        params = {
            "appid": self._config.appid,
            "secret": self._config.secret,
            "code": code,
            "grant_type": "authorization_code",
        }
        # httpx's timeout bounds each read, not the whole exchange; asyncio.timeout caps the
        # total so a server trickling bytes cannot hold a login open. Exceptions are raised
        # ``from None`` because httpx's carry the request URL, and with it the app secret.
        try:
            async with asyncio.timeout(self._config.timeout_s):
                response = await self._http.get(
                    self._config.token_url, params=params, timeout=self._config.timeout_s
                )
        except (TimeoutError, httpx.TimeoutException):
            raise WeChatUnavailable("WeChat did not answer in time") from None
        except httpx.HTTPError as exc:
            raise WeChatUnavailable(f"WeChat could not be reached ({type(exc).__name__})") from None
        return _json_object(response)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise WeChatUnavailable(f"WeChat answered HTTP {response.status_code}")
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise WeChatUnavailable("WeChat answered with something other than JSON") from None
    if not isinstance(body, dict):
        raise WeChatUnavailable("WeChat answered with JSON that is not an object")
    return body


def _identity(body: dict[str, Any]) -> WeChatIdentity:
    errcode = body.get("errcode", 0)
    if errcode == _BUSY:
        raise WeChatUnavailable("WeChat is busy; try again")
    if not isinstance(errcode, int) or isinstance(errcode, bool):
        raise WeChatUnavailable("WeChat answered with an errcode that is not a number")
    if errcode:
        errmsg = body.get("errmsg")
        said = errmsg[:_ERRMSG_MAX] if isinstance(errmsg, str) and errmsg else "no message"
        raise Unauthorized(f"WeChat refused the code: {said}")
    openid = body.get("openid")
    if not _is_id(openid):
        raise WeChatUnavailable("WeChat answered without a usable openid")
    unionid = body.get("unionid")
    # unionid exists only when the app is bound to an open-platform account; absent is normal.
    if unionid is not None and not _is_id(unionid):
        raise WeChatUnavailable("WeChat answered with an unusable unionid")
    return WeChatIdentity(openid=openid, unionid=unionid)


def _is_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= _ID_MAX


def _is_digits(text: str) -> bool:
    # str.isdigit accepts non-ASCII digits that int() would also parse; only ASCII is ours.
    return 0 < len(text) <= 12 and text.isascii() and text.isdigit()


def _now(now: float | None) -> float:
    return time.time() if now is None else now
