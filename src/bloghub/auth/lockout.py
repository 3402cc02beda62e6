"""Failed-login lockout that an attacker cannot aim at an account's owner.

Failures are counted in Redis, each count kept 15 minutes:
- per (account, IP): past its limit that pair is locked for 15 minutes, so one address
  cannot guess on. While locked even the right password is refused: the lock must not
  be a guessing oracle.
- per IP: past its limit (failures on any accounts) that address is locked.
- per account, from everywhere: the account itself is never locked. Past its limit each
  failure makes the next try from an address the account has never logged in from wait
  a delay that doubles with each failure (1 s, 2 s, 4 s … up to a cap), so guessing
  spread over many addresses slows to one guess per cap. Addresses the account logged in
  from recently are *known* and never wait: failures from elsewhere cannot keep the
  owner out.

An address here is the key the client is limited by (``client_address.py``): an IPv6
client's whole /64, which it could otherwise rotate through. The security log names the
full address.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from bloghub.auth.audit import security_event
from bloghub.auth.hidden_names import hidden
from bloghub.auth.limiter import redis_translated
from bloghub.client_address import client_key
from bloghub.errors import RateLimited, Unavailable
from bloghub.logs import SELDOM

log = structlog.get_logger(__name__)

WINDOW_S = 15 * 60
BUSY_RETRY_S = 1


class TooManyAtOnce(RateLimited):
    """Refused unchecked while as many attempts as the limit are counted: some of them may
    still succeed, so nothing is locked."""


# An attempt is counted *before* its password is checked, as a failure until it succeeds:
# counted after, a burst of guesses sent at once would all be checked before the first was
# counted, and get past any limit (and the right password among them would start a session).

# KEYS: attempts, lock. ARGV: window_s, threshold, lock_s. Returns {seconds left of the lock
# refusing this attempt (0: none), 1 if it is refused because ``threshold`` attempts are
# counted already}. Such an attempt is neither checked nor counted, and locks nothing: the
# lock follows failures (``_FAIL``), not attempts still being checked, so a client that
# sends its right password several times at once is not locked out by it.
_ATTEMPT = """
local left = redis.call('TTL', KEYS[2])
if left > 0 then return {left, 0} end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then
  redis.call('DECR', KEYS[1])
  return {0, 1}
end
return {0, 0}
"""

# KEYS: attempts, lock, failures. ARGV: window_s, threshold, lock_s. An attempt failed (it
# is counted among the attempts already): failures alone are counted towards the lock, so
# one wrong password beside right ones still being checked locks nothing; at the threshold
# of failures the lock starts now. Returns the lock's seconds, or 0.
_FAIL = """
local f = redis.call('INCR', KEYS[3])
if f == 1 then redis.call('EXPIRE', KEYS[3], ARGV[1]) end
if f >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('DEL', KEYS[1], KEYS[3])
  return tonumber(ARGV[3])
end
return 0
"""

# KEYS: count. An attempt counted beforehand succeeded: it was no failure (DECR keeps the
# count's expiry; a count already gone stays gone).
_UNCOUNT = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""

# KEYS: failures, delay. ARGV: window_s, threshold, first delay (ms), max delay (ms).
# Returns the delay set (ms), or 0. The count lives on while failures keep coming: a
# slow, steady attack keeps its delay.
_DELAY = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
local over = n - tonumber(ARGV[2])
if over < 0 then return 0 end
local ms = math.floor(math.min(tonumber(ARGV[3]) * 2 ^ over, tonumber(ARGV[4])))
redis.call('SET', KEYS[2], '1', 'PX', ms)
return ms
"""
# KEYS: failures, delay, known. ARGV: as _DELAY. An attempt on the account: from an address
# it knows, never refused and not counted yet (counted if it fails); from elsewhere refused
# while the delay runs, else counted now, the delay set as a failure would set it. Returns
# {ms left of the delay refusing it (0: go ahead), 1 if counted now, the delay set (ms)}.
_ACCOUNT_ATTEMPT = (
    """
if redis.call('EXISTS', KEYS[3]) == 1 then return {0, 0, 0} end
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return {left, 0, 0} end
local set = (function()
"""
    + _DELAY
    + """
end)()
return {0, 1, set}
"""
)


class LocalFailures:
    """A failure limit kept in this process alone: ``threshold`` failures of one subject
    within ``window_s`` lock it for ``lock_s``. Approximate (each process counts its own),
    and bounded: past ``max_subjects`` the one that failed least recently is forgotten.
    Only failures count, so a right token presented again and again is never refused."""

    def __init__(
        self,
        *,
        threshold: int,
        window_s: float,
        lock_s: int,
        max_subjects: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold, self._window_s, self._lock_s = threshold, window_s, lock_s
        self._max = max_subjects
        self._clock = clock
        self._failures: OrderedDict[str, list[float]] = OrderedDict()  # who -> when, in window
        self._locked: OrderedDict[str, float] = OrderedDict()  # who -> locked until

    def attempt(self, who: str, what: str) -> None:
        until = self._locked.get(who)
        if until is None:
            return
        left = until - self._clock()
        if left <= 0:
            del self._locked[who]
            return
        wait = max(1, math.ceil(left))
        raise RateLimited(
            f"too many failed {what}; try again in {wait_text(wait)}", retry_after_s=wait
        )

    def failed(self, who: str) -> int:
        """The seconds of the lock this failure started, or 0."""
        now = self._clock()
        recent = [t for t in self._failures.pop(who, []) if t > now - self._window_s]
        recent.append(now)
        if len(recent) >= self._threshold:
            self._locked[who] = now + self._lock_s
            self._locked.move_to_end(who)
            if len(self._locked) > self._max:
                self._locked.popitem(last=False)
            return self._lock_s
        self._failures[who] = recent
        if len(self._failures) > self._max:
            self._failures.popitem(last=False)
        return 0


class FailureLimit:
    """More than ``threshold`` attempts of one subject within ``window_s`` that did not
    succeed lock it for ``lock_s``; ``threshold`` failures lock it at once.

    With a ``fallback``, a door that must open while Redis cannot be asked (the operator's:
    the dashboard is needed most in an outage) counts in that process-local limit then,
    instead of answering 503; without one, ``Unavailable`` goes to the caller."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        name: str,
        threshold: int,
        window_s: int = WINDOW_S,
        lock_s: int = WINDOW_S,
        fallback: LocalFailures | None = None,
    ) -> None:
        self._redis = redis
        self._fallback = fallback
        self._base = f"{prefix}:{name}"
        self._args = [window_s, threshold, lock_s]
        self._attempt = redis.register_script(_ATTEMPT)
        self._fail = redis.register_script(_FAIL)
        self._uncount = redis.register_script(_UNCOUNT)

    def _keys(self, who: str) -> list[str]:
        """Attempts counted (failed, or being checked), the lock, failures alone."""
        return [
            f"{self._base}:fail:{who}",
            f"{self._base}:lock:{who}",
            f"{self._base}:failed:{who}",
        ]

    async def lock_left(self, who: str) -> int:
        """Seconds ``who`` stays locked (0: not locked)."""
        async with redis_translated():
            return max(0, int(await self._redis.ttl(self._keys(who)[1])))

    async def attempt(self, who: str, what: str) -> None:
        """Count an attempt of ``who`` before it is checked; ``RateLimited`` (naming
        ``what`` is refused) while ``who`` is locked, ``TooManyAtOnce`` while as many of
        its attempts as the threshold are counted (failed, or still being checked)."""
        try:
            async with redis_translated():
                left, busy = await self._attempt(keys=self._keys(who), args=self._args)
        except Unavailable:
            self._local().attempt(who, what)
            return
        if int(left):
            raise RateLimited(
                f"too many failed {what}; try again in {wait_text(int(left))}",
                retry_after_s=int(left),
            )
        if int(busy):
            raise TooManyAtOnce(
                f"too many {what} at once; try again in {wait_text(BUSY_RETRY_S)}",
                retry_after_s=BUSY_RETRY_S,
            )

    async def failed(self, who: str) -> int:
        """The attempt failed; the seconds of the lock it started, or 0."""
        try:
            async with redis_translated():
                return int(await self._fail(keys=self._keys(who), args=self._args))
        except Unavailable:
            return self._local().failed(who)

    async def succeeded(self, who: str) -> None:
        """The attempt succeeded (or was refused before anything was checked): it no
        longer counts."""
        try:
            async with redis_translated():
                await self._uncount(keys=self._keys(who)[:1])
        except Unavailable:
            self._local()  # failures alone count there: nothing to take back

    def _local(self) -> LocalFailures:
        """The fallback, while Redis cannot be asked; ``Unavailable`` again if none."""
        if self._fallback is None:
            raise Unavailable("redis is not reachable")
        if (left_out := SELDOM.due(f"lockout.local:{self._base}")) is not None:
            log.warning("lockout.counted_locally", limit=self._base, left_out=left_out)
        return self._fallback

    async def cleared(self, who: str) -> None:
        """Every attempt and failure counted so far is forgotten."""
        keys = self._keys(who)
        async with redis_translated():
            await self._redis.delete(keys[0], keys[2])


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A login attempt admitted by ``LoginLockout.attempt``: ``failed`` or ``succeeded``
    says how it went."""

    account: str
    ip: str  # as the security log names it
    client: str  # the key the address is limited by
    user_id: str | None
    counted_for_account: bool


class LoginLockout:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        pair_threshold: int = 5,
        ip_threshold: int = 50,
        account_threshold: int = 10,
        first_delay_s: int = 1,
        max_delay_s: int = 900,
        known_for_s: int = 30 * 24 * 3600,
        names_key: bytes = b"",
    ) -> None:
        self._redis = redis
        self._names_key = names_key
        self._base = f"{prefix}:login"
        self._pair = FailureLimit(redis, prefix=self._base, name="pair", threshold=pair_threshold)
        self._ip = FailureLimit(redis, prefix=self._base, name="ip", threshold=ip_threshold)
        self._delay_args = [WINDOW_S, account_threshold, first_delay_s * 1000, max_delay_s * 1000]
        self._known_for_s = known_for_s
        self._delay = redis.register_script(_DELAY)
        self._account_attempt = redis.register_script(_ACCOUNT_ATTEMPT)
        self._uncount = redis.register_script(_UNCOUNT)

    def _account_keys(self, account: str) -> list[str]:
        # The account is the email as typed, personal data that an erasure frees and that
        # is kept nowhere in clear: named by a keyed hash (``hidden_names``).
        named = hidden(account, self._names_key)
        return [f"{self._base}:fail:account:{named}", f"{self._base}:delay:account:{named}"]

    def _pair_id(self, account: str, client: str) -> str:
        """One short key part for an (account, address) pair, whatever either contains,
        by a keyed hash: the account is an email, the address a person's."""
        return hidden(f"{account}\0{client}", self._names_key)

    def _known_key(self, account: str, client: str) -> str:
        return f"{self._base}:known:{self._pair_id(account, client)}"

    def _known_user_key(self, user_id: str, client: str) -> str:
        return f"{self._base}:known_user:{self._pair_id(user_id, client)}"

    async def know(self, user_id: str, ip: str) -> None:
        """The user signed in from this address (by any method): it is theirs for a while."""
        async with redis_translated():
            await self._redis.set(
                self._known_user_key(user_id, client_key(ip)), "1", ex=self._known_for_s
            )

    async def knows(self, user_id: str, ip: str) -> bool:
        """Whether the user signed in from this address lately (``know``): what is asked
        from it is the owner's own, not a stranger's."""
        async with redis_translated():
            return bool(await self._redis.exists(self._known_user_key(user_id, client_key(ip))))

    async def attempt(self, account: str, ip: str, *, user_id: str | None) -> LoginAttempt:
        """Count the attempt before its password is checked. Refuse at once while this
        address, or this address for this account, is locked (or this attempt locks it),
        or while the account's delay runs and this address is not one it knows."""
        client = client_key(ip)
        pair = self._pair_id(account, client)
        try:
            await self._ip.attempt(client, "logins from this address")
            try:
                await self._pair.attempt(pair, "logins")
            except RateLimited:
                await self._ip.succeeded(client)  # refused unchecked: no attempt at a password
                raise
        except RateLimited as refused:
            reason = "at_once" if isinstance(refused, TooManyAtOnce) else "locked"
            security_event("login.refused", ip=ip, user_id=user_id, reason=reason)
            raise
        async with redis_translated():
            left_ms, counted, delay_ms = await self._account_attempt(
                keys=[*self._account_keys(account), self._known_key(account, client)],
                args=self._delay_args,
            )
        if int(left_ms):
            await self._ip.succeeded(client)
            await self._pair.succeeded(pair)
            security_event("login.refused", ip=ip, user_id=user_id, reason="delayed")
            left_s = -(-int(left_ms) // 1000)
            raise RateLimited(
                f"too many failed logins for this account; try again in {wait_text(left_s)}",
                retry_after_s=left_s,
            )
        if int(delay_ms):
            security_event(
                "login.delayed", ip=ip, user_id=user_id, scope="account", for_ms=int(delay_ms)
            )
        return LoginAttempt(account, ip, client, user_id, bool(int(counted)))

    async def failed(self, attempt: LoginAttempt) -> None:
        account, ip, user_id = attempt.account, attempt.ip, attempt.user_id
        security_event("login.failed", ip=ip, user_id=user_id)
        for scope, lock_s in (
            ("account_ip", await self._pair.failed(self._pair_id(account, attempt.client))),
            ("ip", await self._ip.failed(attempt.client)),
        ):
            if lock_s:
                security_event("login.locked", ip=ip, user_id=user_id, scope=scope, for_s=lock_s)
        if attempt.counted_for_account:
            return
        async with redis_translated():
            delay_ms = int(
                await self._delay(keys=self._account_keys(account), args=self._delay_args)
            )
        if delay_ms:
            security_event(
                "login.delayed", ip=ip, user_id=user_id, scope="account", for_ms=delay_ms
            )

    async def abandoned(self, attempt: LoginAttempt) -> None:
        """The password was right but the login was refused for a reason of its own (the
        ``Bloghub-After`` it sent): it no longer counts, and nothing is learnt of the
        address. Left counted, five such refusals held the right password at 429."""
        await self._pair.succeeded(self._pair_id(attempt.account, attempt.client))
        await self._ip.succeeded(attempt.client)
        if attempt.counted_for_account:
            async with redis_translated():
                await self._uncount(keys=self._account_keys(attempt.account)[:1])

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """The address is now known to the account, and the pair's failures forgotten.
        The account's own count is left to expire (less this attempt): a login by the owner
        must not hand an attacker a fresh set of guesses."""
        account, client = attempt.account, attempt.client
        await self._pair.cleared(self._pair_id(account, client))
        await self._ip.succeeded(client)
        async with redis_translated():
            if attempt.counted_for_account:
                await self._uncount(keys=self._account_keys(account)[:1])
            await self._redis.set(self._known_key(account, client), "1", ex=self._known_for_s)
        if attempt.user_id is not None:
            await self.know(attempt.user_id, attempt.ip)


def wait_text(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
