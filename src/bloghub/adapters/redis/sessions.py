"""Live sessions, written by the commands that start, rotate and end them.

The users read model learns of sessions from the log and may lag behind it by any amount;
a logout must not. So every session also lives here, written when its command runs, and
every authenticated request asks here: a session is live only while its record exists.
Ending a session deletes the record, so an ended session (or one this store has lost)
is refused, never accepted.

A record holds the session's owner and the id of its one current refresh token, and
expires at the session's absolute end: as long as any token of the session could still
verify. Rotation is a compare-and-set on that id, so any other token of the session, old
or concurrent, is reuse, however long after its use it comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from redis.asyncio import Redis

from bloghub.adapters.redis.live_channels import sessions_ended_channel
from bloghub.auth.limiter import Gate, redis_translated

# KEYS: the session, its owner's set of sessions, the owner's credentials epoch. ARGV:
# sid, owner, refresh id, end (ms), the epoch the login checked the password in ('' for
# none): a session is not opened if the credentials changed since (returns 0).
_OPEN = """
if ARGV[5] ~= '' and (redis.call('GET', KEYS[3]) or '0') ~= ARGV[5] then return 0 end
redis.call('HSET', KEYS[1], 'user', ARGV[2], 'jti', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('PEXPIRETIME', KEYS[2]) < tonumber(ARGV[4]) then
  redis.call('PEXPIREAT', KEYS[2], ARGV[4])
end
return 1
"""

# KEYS: the session. ARGV: owner, presented refresh id, new refresh id.
_ROTATE = """
local s = redis.call('HMGET', KEYS[1], 'user', 'jti')
if not s[1] or s[1] ~= ARGV[1] then return 'ended' end
if s[2] ~= ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 'reused'
end
redis.call('HSET', KEYS[1], 'jti', ARGV[3])
return 'rotated'
"""

# KEYS: the session. ARGV: the refresh id to restore, the one that replaced it.
_RESTORE = """
if redis.call('HGET', KEYS[1], 'jti') == ARGV[2] then
  redis.call('HSET', KEYS[1], 'jti', ARGV[1])
end
return 1
"""

# KEYS: the owner's set of sessions, and their credentials epoch (moved when given). ARGV:
# the session key prefix, the session to keep.
_END_ALL = """
if KEYS[2] then redis.call('INCR', KEYS[2]) end
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if sid ~= ARGV[2] then
    redis.call('DEL', ARGV[1] .. sid)
    redis.call('SREM', KEYS[1], sid)
  end
end
return 1
"""


class Rotation(StrEnum):
    ROTATED = "rotated"
    REUSED = "reused"  # not the session's current refresh token: the session is now ended
    ENDED = "ended"  # the session had already ended (or never existed)


class SessionStore:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._session_prefix = f"{prefix}:session:"
        self._owned_prefix = f"{prefix}:user-sessions:"
        self._epoch_prefix = f"{prefix}:user-credentials:"
        # Live sockets of the user re-check their session when told (api/v1/live.py).
        self._ended_channel = sessions_ended_channel(prefix)
        self._open = redis.register_script(_OPEN)
        self._rotate = redis.register_script(_ROTATE)
        self._restore = redis.register_script(_RESTORE)
        self._end_all = redis.register_script(_END_ALL)

    async def open(
        self,
        session_id: str,
        user_id: str,
        refresh_jti: str,
        ends_at: int,
        *,
        epoch: str | None = None,
    ) -> bool:
        """Open the session; with ``epoch`` (``credentials_epoch`` read before the password
        was checked) only if the account's credentials have not changed since: False
        then, and nothing opened."""
        keys = [
            self._session_prefix + session_id,
            self._owned_prefix + user_id,
            self._epoch_prefix + user_id,
        ]
        args: list[str | int] = [session_id, user_id, refresh_jti, ends_at * 1000, epoch or ""]
        async with redis_translated():
            return bool(await self._open(keys=keys, args=args))

    async def credentials_epoch(self, user_id: str) -> str:
        """How many times the account's credentials were sealed (``seal``), as a login
        reads it before it checks a password."""
        async with redis_translated():
            raw = await self._redis.get(self._epoch_prefix + user_id)
        return "0" if raw is None else _text(raw)

    async def rotate(self, session_id: str, user_id: str, presented: str, new: str) -> Rotation:
        """Make ``new`` the current refresh token if ``presented`` is; end the session if
        it is not (see the module's note)."""
        async with redis_translated():
            outcome = await self._rotate(
                keys=[self._session_prefix + session_id], args=[user_id, presented, new]
            )
            if _text(outcome) == Rotation.REUSED:
                await self._redis.publish(self._ended_channel, user_id)
        return Rotation(_text(outcome))

    async def restore(self, session_id: str, previous: str, new: str) -> None:
        """Undo a rotation whose pair never reached the client (its event surely failed)."""
        async with redis_translated():
            await self._restore(keys=[self._session_prefix + session_id], args=[previous, new])

    async def is_live(self, session_id: str, user_id: str) -> bool:
        async with redis_translated():
            owner = await self._redis.hget(self._session_prefix + session_id, "user")
        return owner is not None and _text(owner) == user_id

    def owner_read(self, session_id: str) -> tuple[str, str, str]:
        """The command that reads the session's owner, for a caller's own round trip
        (``owns`` then answers ``is_live`` from its reply)."""
        return ("HGET", self._session_prefix + session_id, "user")

    def live_gate(self, session_id: str, user_id: str) -> Gate:
        """``is_live`` as a condition a Redis script reads itself (auth/limiter.py): the
        same rule, the session's owner being ``user_id``."""
        return Gate(self._session_prefix + session_id, "user", user_id)

    @staticmethod
    def owns(reply: object, user_id: str) -> bool:
        return isinstance(reply, bytes | str) and _text(reply) == user_id

    async def is_live_reading(
        self, session_id: str, user_id: str, key: str
    ) -> tuple[bool, dict[bytes | str, bytes | str]]:
        """``is_live``, and the hash at ``key`` read in the same round trip (the caller's
        own last write, which an authenticated request reads next)."""
        async with redis_translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._session_prefix + session_id, "user")
            pipe.hgetall(key)
            owner, fields = await pipe.execute()
        return self.owns(owner, user_id), fields

    async def live_among(self, sessions: Sequence[tuple[str, str]]) -> set[str]:
        """Which of these (session, owner) pairs are live, in one round trip."""
        async with redis_translated(), self._redis.pipeline(transaction=False) as pipe:
            for session_id, _ in sessions:
                pipe.hget(self._session_prefix + session_id, "user")
            owners = await pipe.execute()
        return {
            sid
            for (sid, user), owner in zip(sessions, owners, strict=True)
            if owner is not None and _text(owner) == user
        }

    async def end(self, session_id: str, user_id: str) -> None:
        async with redis_translated():
            await self._redis.delete(self._session_prefix + session_id)
            await self._redis.srem(self._owned_prefix + user_id, session_id)
            await self._redis.publish(self._ended_channel, user_id)

    async def end_all(self, user_id: str, *, keep: str | None = None) -> None:
        """End every session of ``user_id`` but ``keep`` (a password change keeps its own)."""
        async with redis_translated():
            await self._end_all(
                keys=[self._owned_prefix + user_id], args=[self._session_prefix, keep or ""]
            )
            await self._redis.publish(self._ended_channel, user_id)

    async def seal(self, user_id: str, *, keep: str | None = None) -> None:
        """``end_all`` once a change of the account's credentials is remembered for logins
        to wait on, and, in the same step, move its credentials epoch: a login that checked
        the old password before (its hash is slow) and opens its session after is refused
        (``open``), and one that opened before is ended here."""
        keys = [self._owned_prefix + user_id, self._epoch_prefix + user_id]
        async with redis_translated():
            await self._end_all(keys=keys, args=[self._session_prefix, keep or ""])
            await self._redis.publish(self._ended_channel, user_id)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
