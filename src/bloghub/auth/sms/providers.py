"""SMS providers behind one port: a console logger for development and a generic HTTP
gateway. Each raises ``ProviderTimeout`` or ``ProviderError``, nothing else."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

import httpx
import structlog

from bloghub.auth.sms.phones import mask_phone

log = structlog.get_logger(__name__)


# Runs of digits as long as a code or longer: a gateway that echoes the request in its
# error would otherwise put the phone and the code in the log with the error.
_NUMBERS = re.compile(r"\d{4,}")


def _without_numbers(text: str) -> str:
    return _NUMBERS.sub("…", text)


class ProviderError(Exception):
    """The provider did not take the message (refused, broken, unreachable)."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason


class ProviderTimeout(ProviderError):
    """No answer in time; the message may or may not have gone out."""


class CircuitOpen(ProviderError):
    """Rejected without a call: the provider failed repeatedly and is cooling down."""


class SmsProvider(Protocol):
    name: str

    async def send(self, phone: str, text: str) -> None: ...


class ConsoleProvider:
    """Development default: the message goes to the log (codes are read from there)."""

    def __init__(self, name: str = "console") -> None:
        self.name = name

    async def send(self, phone: str, text: str) -> None:
        # The text (with its code) is what development reads; the phone is masked, as in
        # every other log line (SECURITY.md, "SMS codes").
        log.info("sms.console", provider=self.name, phone=mask_phone(phone), text=text)


class HttpProvider:
    """A gateway taking ``POST <url>`` with JSON ``{phone, text}``; any 2xx means sent."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        bearer_token: str | None = None,
        api_key: str | None = None,
        api_key_header: str = "X-Api-Key",
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self._url = url
        self._headers = dict(headers or {})
        if bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        if api_key is not None:
            self._headers[api_key_header] = api_key
        self._timeout = httpx.Timeout(timeout_s)
        self._owns_client = client is None
        # Redirects are not followed: a gateway that moves should be reconfigured, and a
        # redirect must not carry the credentials somewhere else.
        self._client = client or httpx.AsyncClient(follow_redirects=False)

    async def send(self, phone: str, text: str) -> None:
        try:
            response = await self._client.post(
                self._url,
                json={"phone": phone, "text": text},
                headers=self._headers,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(self.name, f"no answer in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(self.name, f"request failed: {exc!r}") from exc
        if not response.is_success:
            said = _without_numbers(response.text[:200])
            raise ProviderError(self.name, f"HTTP {response.status_code}: {said!r}")
        log.info("sms.sent", provider=self.name, phone=mask_phone(phone))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
