"""One-time SMS codes in Redis: issued at most once a minute per purpose, at most ten a
day per phone, checked at most three times.

Per purpose and phone there are three keys: the code itself
(``<prefix>:phone_code:<purpose>:<phone_key(phone)>``, 10 minutes: the phone, personal
data, is named by a hash in every key), its wrong-try counter (lives no
longer than the code) and a cooldown marker (1 minute); per phone, a count of the codes
issued in the day since the first. Issuing and checking are one Lua script each, so
concurrent requests cannot both issue, nor pass the daily cap together, nor share a try;
and a refused request stores no code.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Sequence

import structlog
from redis.asyncio import Redis

from bloghub.auth.hidden_names import hidden
from bloghub.auth.limiter import redis_translated
from bloghub.auth.sms.phones import mask_phone, normalise_phone
from bloghub.errors import RateLimited

log = structlog.get_logger(__name__)

CODE_DIGITS = 6


def phone_key(phone: str, key: bytes = b"") -> str:
    """How the keys name a phone (E.164): by a keyed hash, not in clear (``hidden_names``)."""
    return hidden(phone, key)


_PURPOSE = re.compile(r"[a-z][a-z0-9_-]{0,31}")

# KEYS: code, tries, cooldown, day count. ARGV: code, code ttl (s), cooldown (s), codes per
# day, day (s). Returns {0, 0} when issued, else {1, cooldown ms left} or {2, day ms left}.
_ISSUE = """
local left = redis.call('PTTL', KEYS[3])
if left > 0 then return {1, left} end
local issued = tonumber(redis.call('GET', KEYS[4]) or '0')
if issued >= tonumber(ARGV[4]) then return {2, redis.call('PTTL', KEYS[4])} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('DEL', KEYS[2])
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[3], '1', 'EX', ARGV[3]) end
if redis.call('INCR', KEYS[4]) == 1 then redis.call('EXPIRE', KEYS[4], ARGV[5]) end
return {0, 0}
"""
DAY_S = 24 * 3600
# Which purposes share a phone's daily codes. Login and bind codes go to any phone anyone
# names; a reset code only to a phone an account holds, and owner and erase codes only to
# the asking owner's own: so codes strangers ask for use up the first only, never the
# owner's way back in (a reset) or out. A reset is asked for signed out, by anyone who
# names the phone: one asked from an address the account signed in from lately
# (``reset_known``) has a code, a cooldown and a day's count of its own, which resets
# asked from anywhere else cannot use up or replace.
_BUDGETS = {
    "login": "open",
    "bind": "open",
    "reset": "reset",
    "reset_known": "reset_known",
    "owner": "owner",
    "erase": "owner",
}

# KEYS: code and tries of each code checked together. ARGV: the candidates, then max
# tries. Returns 1 or 0 per code. The codes are spent together, only when every one is
# right: one proof of a pair is not used up by the other's mistake. A wrong one counts a
# try, and its last allowed try spends it. INCR starts a missing counter at 1, and the
# counter expires with the code, so a stale one never outlives it.
_CHECK = """
local n = #ARGV - 1
local max = tonumber(ARGV[#ARGV])
local right, all = {}, true
for i = 1, n do
  local stored = redis.call('GET', KEYS[2 * i - 1])
  if stored and stored == ARGV[i] then right[i] = 1 else right[i] = 0; all = false end
end
for i = 1, n do
  local code, tries = KEYS[2 * i - 1], KEYS[2 * i]
  if all then
    redis.call('DEL', code, tries)
  elseif right[i] == 0 and redis.call('EXISTS', code) == 1 then
    if redis.call('INCR', tries) >= max then
      redis.call('DEL', code, tries)
    else
      local ttl = redis.call('PTTL', code)
      if ttl > 0 then redis.call('PEXPIRE', tries, ttl) end
    end
  end
end
return right
"""


def format_code(number: int) -> str:
    """``123`` → ``"000123"``: always six ASCII digits."""
    if not 0 <= number < 10**CODE_DIGITS:
        raise ValueError(f"a code is a number below {10**CODE_DIGITS}")
    return f"{number:0{CODE_DIGITS}d}"


class SmsCodes:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        ttl_s: int = 600,
        cooldown_s: int = 60,
        per_day: int = 10,
        max_tries: int = 3,
        randbelow: Callable[[int], int] = secrets.randbelow,
        names_key: bytes = b"",
    ) -> None:
        self._prefix = prefix
        self._names_key = names_key
        self._ttl_s = ttl_s
        self._cooldown_s = cooldown_s
        self._per_day = per_day
        self._max_tries = max_tries
        self._randbelow = randbelow
        self._issue = redis.register_script(_ISSUE)
        self._check = redis.register_script(_CHECK)

    @property
    def ttl_s(self) -> int:
        """How long a code is good for, in seconds."""
        return self._ttl_s

    def _keys(self, purpose: str, phone: str) -> list[str]:
        if _PURPOSE.fullmatch(purpose) is None:
            raise ValueError(f"bad code purpose {purpose!r}")
        named = phone_key(phone, self._names_key)
        tail = f"{purpose}:{named}"
        p = self._prefix
        return [
            f"{p}:phone_code:{tail}",
            f"{p}:phone_code_tries:{tail}",
            f"{p}:phone_code_cd:{tail}",
            f"{p}:phone_code_day:{_BUDGETS.get(purpose, purpose)}:{named}",
        ]

    async def issue(self, purpose: str, phone: str) -> str:
        """A new code for ``phone`` (any accepted spelling); the caller sends it.

        ``RateLimited`` within the cooldown of the previous code or past the phone's codes
        for the day, ``ValueError`` for a number that is not a phone, ``Unavailable`` when
        Redis cannot be reached.
        """
        phone = normalise_phone(phone)
        code = format_code(self._randbelow(10**CODE_DIGITS))
        args: list[str | int] = [code, self._ttl_s, self._cooldown_s, self._per_day, DAY_S]
        async with redis_translated():
            refused, left_ms = await self._issue(keys=self._keys(purpose, phone), args=args)
        retry_after_s = max(1, math.ceil(int(left_ms) / 1000))
        if int(refused) == 1:
            raise RateLimited(
                "a code was sent to this number moments ago; wait before asking again",
                retry_after_s=retry_after_s,
            )
        if int(refused) == 2:
            log.warning("sms_code.daily_cap", purpose=purpose, phone=mask_phone(phone))
            raise RateLimited(
                f"this number has had {self._per_day} codes today; try again tomorrow",
                retry_after_s=retry_after_s,
            )
        log.info("sms_code.issued", purpose=purpose, phone=mask_phone(phone))
        return code

    async def check(self, purpose: str, phone: str, code: str) -> bool:
        """True once for the right code; False for a wrong, spent, expired or unsent one."""
        (ok,) = await self.check_all([(purpose, phone, code)])
        return ok

    async def check_all(self, checks: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Whether each (purpose, phone, code) is right; all are spent together, and only
        when every one is (a bind proven by a code to the old phone and one to the new)."""
        keys: list[str] = []
        args: list[str | int] = []
        phones: list[str | None] = []
        for purpose, given, code in checks:
            phone: str | None
            try:
                phone = normalise_phone(given)
            except ValueError:
                phone = None  # no code is ever sent to a non-phone: never right
            phones.append(phone)
            code_key, tries_key = self._keys(purpose, phone or "none")[:2]
            keys += [code_key, tries_key]
            args.append(code if phone is not None else "")
        async with redis_translated():
            found = await self._check(keys=keys, args=[*args, self._max_tries])
        oks = [bool(int(x)) and phone is not None for x, phone in zip(found, phones, strict=True)]
        for (purpose, _, _), phone, ok in zip(checks, phones, oks, strict=True):
            shown = "none" if phone is None else mask_phone(phone)
            log.info("sms_code.checked", purpose=purpose, phone=shown, ok=ok)
        return oks
