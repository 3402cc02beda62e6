"""One server-side script that applies a Redis projector's batch and moves its checkpoints,
all or nothing.

MULTI/EXEC does not roll back: a command that fails inside it (a wrong type, a bad number)
leaves the ones before it applied while the checkpoint may or may not move. This script
instead checks everything first (each partition's checkpoint is still where the batch was
filtered against, each write is of a known kind with well-formed arguments and meets a key
of the right type, following the types the batch's own writes give its keys), and only
then writes. Redis runs a script alone, so nothing changes between the check and the writes.

Only the checkpoint fields of the batch's own partitions are compared: lanes of one
projector that write other partitions never make each other start again (WATCH on the
whole checkpoint hash did).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

# The kinds of write a batch may hold (checked by the script, with the key type each needs):
#   HINCRBY key field n | HSET key field value | HDEL key field
#   INCRBY key n | SET key value | DEL key
#   SADD key member | SREM key member
#   ZINCRBY key n member | ZADD key score member | ZREM key member
MOVED = b"moved"

# KEYS[1]: the checkpoint hash; KEYS[2..]: every key the writes touch.
# ARGV: n partitions; n x (field, expected offset or '', next offset); then the writes,
# each as: kind, key index (into KEYS), then its arguments. Per kind: the key type it
# needs, how many arguments, which of them must be a number (0: none).
_SCRIPT = """
local kinds = {
  HINCRBY={'hash', 2, 2}, HSET={'hash', 2, 0}, HDEL={'hash', 1, 0},
  INCRBY={'string', 1, 1}, SET={'string', 1, 0}, DEL={'any', 0, 0},
  SADD={'set', 1, 0}, SREM={'set', 1, 0},
  ZINCRBY={'zset', 2, 1}, ZADD={'zset', 2, 1}, ZREM={'zset', 1, 0},
}
local n = tonumber(ARGV[1])
local at = 2
for i = 1, n do
  local stored = redis.call('HGET', KEYS[1], ARGV[at]) or ''
  if stored ~= ARGV[at + 1] then return 'moved' end
  at = at + 3
end
local types = {}
local writes = {}
local i = at
while i <= #ARGV do
  local kind = kinds[ARGV[i]]
  if not kind then return redis.error_reply('unknown write kind ' .. tostring(ARGV[i])) end
  local k = tonumber(ARGV[i + 1])
  local key = k and KEYS[k]
  if not key or k < 2 then return redis.error_reply('bad key index in ' .. ARGV[i]) end
  if kind[3] > 0 and not tonumber(ARGV[i + 1 + kind[3]]) then
    return redis.error_reply(ARGV[i] .. ' needs a number, got ' .. tostring(ARGV[i + 1 + kind[3]]))
  end
  if kind[2] > 0 and i + 1 + kind[2] > #ARGV then
    return redis.error_reply(ARGV[i] .. ' lacks arguments')
  end
  local now = types[key] or redis.call('TYPE', key)['ok']
  if kind[1] ~= 'any' and now ~= 'none' and now ~= kind[1] then
    return redis.error_reply(ARGV[i] .. ' on ' .. key .. ' which is a ' .. now)
  end
  types[key] = (kind[1] == 'any') and 'none' or kind[1]
  writes[#writes + 1] = {ARGV[i], key, i + 2, kind[2]}
  i = i + 2 + kind[2]
end
for _, w in ipairs(writes) do
  local args = {}
  for j = 0, w[4] - 1 do args[#args + 1] = ARGV[w[3] + j] end
  redis.call(w[1], w[2], unpack(args))
end
at = 2
for p = 1, n do
  local nxt = tonumber(ARGV[at + 2])
  if nxt > tonumber(ARGV[at + 1] ~= '' and ARGV[at + 1] or '-1') then
    redis.call('HSET', KEYS[1], ARGV[at], nxt)
  end
  at = at + 3
end
return 'ok'
"""


@dataclass(frozen=True, slots=True)
class Write:
    """One write of a batch: a kind from ``KINDS``, its key and its arguments."""

    kind: str
    key: str
    args: tuple[str | int | float, ...] = ()


class BatchScript:
    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_SCRIPT)

    async def run(
        self,
        checkpoint_key: str,
        expected: Mapping[str, int | None],
        next_offsets: Mapping[str, int],
        writes: Sequence[Write],
    ) -> bool:
        """Apply ``writes`` and move the checkpoints, if every partition's checkpoint is
        still ``expected`` (None: none yet). False if one moved: nothing was written.
        A write that could not apply raises ``ResponseError`` before anything is written."""
        keys = [checkpoint_key]
        index: dict[str, int] = {}
        args: list[str | int | float] = [len(next_offsets)]
        for field, nxt in next_offsets.items():
            was = expected.get(field)
            args += [field, "" if was is None else str(was), nxt]
        for w in writes:
            if w.key not in index:
                keys.append(w.key)
                index[w.key] = len(keys)
            args += [w.kind, index[w.key], *w.args]
        answer = await self._script(keys=keys, args=args)
        return bytes(answer) != MOVED
