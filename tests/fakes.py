"""Fakes for unit tests. Each implements a real port and passes the same contract tests as
the real adapter (tests/integration/test_sms_provider_contract.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Literal

from bloghub.auth.sms.providers import ProviderError, ProviderTimeout

Outcome = Literal["ok", "fail", "timeout", "crash", "hang"]


class Scripted:
    """A fake provider (same port as the real ones) playing a script of outcomes."""

    def __init__(self, name: str, script: Iterable[Outcome] = (), then: Outcome = "ok") -> None:
        self.name = name
        self._script = list(script)
        self.then = then
        self.sent: list[tuple[str, str]] = []

    @property
    def calls(self) -> int:
        return len(self.sent)

    async def send(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))
        outcome = self._script.pop(0) if self._script else self.then
        if outcome == "fail":
            raise ProviderError(self.name, "HTTP 500")
        if outcome == "timeout":
            raise ProviderTimeout(self.name, "no answer")
        if outcome == "crash":
            raise RuntimeError("bug in the provider adapter")
        if outcome == "hang":
            await asyncio.Event().wait()
