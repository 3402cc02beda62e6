"""Failed-login lockout: failures are counted per account and per IP in Redis; five for an
account within 15 minutes lock it for 15 minutes (and a flood from one IP locks that IP).
While locked, even the right password is refused: the lock must not be a guessing oracle."""

from __future__ import annotations

from redis.asyncio import Redis

from bloghub.errors import RateLimited

# KEYS: failures, lock. ARGV: window_s, threshold, lock_s. Returns the lock's seconds left.
_FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return tonumber(ARGV[3])
end
return 0
"""


class LoginLockout:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        window_s: int = 900,
        lock_s: int = 900,
        account_threshold: int = 5,
        ip_threshold: int = 50,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._window_s = window_s
        self._lock_s = lock_s
        self._thresholds = {"account": account_threshold, "ip": ip_threshold}
        self._fail = redis.register_script(_FAIL)

    def _keys(self, scope: str, who: str) -> tuple[str, str]:
        base = f"{self._prefix}:login"
        return f"{base}:fail:{scope}:{who}", f"{base}:lock:{scope}:{who}"

    async def check(self, account: str, ip: str) -> None:
        """Refuse at once while the account or the IP is locked."""
        for scope, who in (("account", account), ("ip", ip)):
            left = await self._redis.ttl(self._keys(scope, who)[1])
            if left > 0:
                raise RateLimited(
                    f"too many failed logins; try again in {_minutes(left)}",
                    retry_after_s=left,
                )

    async def failed(self, account: str, ip: str) -> None:
        for scope, who in (("account", account), ("ip", ip)):
            await self._fail(
                keys=list(self._keys(scope, who)),
                args=[self._window_s, self._thresholds[scope], self._lock_s],
            )

    async def succeeded(self, account: str) -> None:
        await self._redis.delete(self._keys("account", account)[0])


def _minutes(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
