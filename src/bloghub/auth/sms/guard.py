"""Limits on what one address may do with SMS codes, and where codes may be sent.

Texts cost money and reach strangers' phones, and a six-digit code falls to enough
guesses: so one address may ask for only so many codes an hour and try only so many, and
codes go only to the country calling codes settings allow. (The per-phone cooldown and
daily cap live with the codes themselves, in ``SmsCodes``.) An address is counted by its
client key (``client_address.py``): an IPv6 client's whole /64, or it could rotate
through its addresses past the limits.
"""

from __future__ import annotations

from collections.abc import Sequence

from bloghub.auth.audit import security_event
from bloghub.auth.limiter import SlidingWindowLimiter
from bloghub.client_address import client_key
from bloghub.errors import InvalidInput, RateLimited

HOUR_S = 3600.0


class SmsGuard:
    def __init__(
        self,
        limiter: SlidingWindowLimiter,
        *,
        sends_per_ip_per_hour: int,
        checks_per_ip_per_hour: int,
        country_codes: Sequence[str],
    ) -> None:
        self._limiter = limiter
        self._limits = {"sent": sends_per_ip_per_hour, "checked": checks_per_ip_per_hour}
        self._countries = tuple(country_codes)

    def check_country(self, phone: str) -> None:
        """``InvalidInput`` unless ``phone`` (E.164) is in an allowed country. Calling codes
        are prefix-free, so a prefix match names exactly one country."""
        if not phone[1:].startswith(self._countries):
            allowed = ", ".join(f"+{code}" for code in self._countries)
            raise InvalidInput(
                "codes are not sent to that country",
                fields={"phone": f"only numbers starting {allowed} are served"},
            )

    async def sending(self, ip: str) -> None:
        """Count one code asked for by ``ip``; ``RateLimited`` past the hourly limit."""
        await self._take("sent", ip)

    async def checking(self, ip: str) -> None:
        """Count one code tried by ``ip``; ``RateLimited`` past the hourly limit."""
        await self._take("checked", ip)

    async def _take(self, what: str, ip: str) -> None:
        key = f"sms:{what}:ip:{client_key(ip)}"
        decision = await self._limiter.allow(key, self._limits[what], HOUR_S)
        if decision.allowed:
            return
        security_event("sms.refused", ip=ip, user_id=None, reason=f"codes_{what}_per_ip")
        raise RateLimited(
            f"too many codes {what} from this address; try again later",
            retry_after_s=decision.retry_after_s,
        )
