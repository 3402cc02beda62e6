"""One server-side script that applies a Redis projector's batch and moves its checkpoints,
all or nothing.

MULTI/EXEC does not roll back: a command that fails inside it (a wrong type, a bad number)
leaves the ones before it applied while the checkpoint may or may not move. This script
instead checks everything first (each partition's checkpoint is still where the batch was
filtered against, each write is of a known kind with arguments Redis will take and meets a
key of the right type, and each increment meets an integer it keeps within 64 bits,
following what the batch's own writes leave in its keys), and only then writes. Redis runs
a script alone, so nothing changes between the check and the writes.

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
# needs, how many arguments.
#
# Every argument and value is checked as Redis itself will read it, since Lua's
# ``tonumber`` is laxer ("0.5", " 7", "1e3" and "0x10" are numbers to it): an increment is
# a 64-bit integer (digits, an optional '-', no leading zero), the value it adds to is one
# too (following what the batch's earlier writes leave there), and the sum stays within
# 64 bits; a score is a finite decimal number. Integers are worked on exactly, as
# hi * 1e9 + lo (a double holds each part exactly, not the whole).
_SCRIPT = """
local kinds = {
  HINCRBY={'hash', 2}, HSET={'hash', 2}, HDEL={'hash', 1},
  INCRBY={'string', 1}, SET={'string', 1}, DEL={'any', 0},
  SADD={'set', 1}, SREM={'set', 1},
  ZINCRBY={'zset', 2}, ZADD={'zset', 2}, ZREM={'zset', 1},
}

local function int64(hi, lo)
  local carry = math.floor(lo / 1e9)
  hi, lo = hi + carry, lo - carry * 1e9
  if hi > 9223372036 or (hi == 9223372036 and lo > 854775807) then return nil end
  if hi < -9223372037 or (hi == -9223372037 and lo < 145224192) then return nil end
  return {hi, lo}
end

local function integer(s)
  if s == '0' then return {0, 0} end
  local sign, digits = string.match(s, '^(%-?)([1-9]%d*)$')
  if not digits or #digits > 19 then return nil end
  local hi = tonumber(string.sub(digits, 1, -10)) or 0
  local lo = tonumber(string.sub(digits, -9))
  if sign == '-' then return int64(-hi, -lo) end
  return int64(hi, lo)
end

local function finite(s)
  local mantissa = string.match(s, '^[-+]?(%d*%.?%d*)[eE][-+]?%d+$')
    or string.match(s, '^[-+]?(%d*%.?%d*)$')
  if not mantissa or not string.find(mantissa, '%d') then return false end
  local x = tonumber(s)
  if not x or x ~= x or x == math.huge or x == -math.huge then return false end
  -- Redis refuses a number too small to be told from zero.
  return x ~= 0 or not string.find(mantissa, '[1-9]')
end

-- What the batch's writes so far leave in string keys and hash fields (false: nothing),
-- read from Redis the first time an increment needs it.
local strings, fields, gone = {}, {}, {}
local function slot(kind, key, field)
  if kind == 'INCRBY' or kind == 'SET' then return strings, key end
  fields[key] = fields[key] or {}
  return fields[key], field
end

local function current(kind, key, field)
  local held, at = slot(kind, key, field)
  if held[at] == nil then
    if gone[key] then
      held[at] = false
    elseif held == strings then
      held[at] = redis.call('GET', key)
    else
      held[at] = redis.call('HGET', key, field)
    end
  end
  return held, at
end

-- Why Redis would refuse this write partway (nil: it will not), noting what it leaves.
local function refused(kind, key, a)
  if kind == 'DEL' then
    strings[key], fields[key], gone[key] = false, {}, true
  elseif kind == 'SET' or kind == 'HSET' or kind == 'HDEL' then
    local held, at = slot(kind, key, ARGV[a])
    held[at] = (kind == 'SET' and ARGV[a]) or (kind == 'HSET' and ARGV[a + 1]) or false
  elseif kind == 'INCRBY' or kind == 'HINCRBY' then
    local n = ARGV[kind == 'HINCRBY' and a + 1 or a]
    local by = integer(n)
    if not by then return 'the increment ' .. n .. ' is not a 64-bit integer' end
    local held, at = current(kind, key, ARGV[a])
    local now = held[at]
    local base = (not now and {0, 0}) or (type(now) == 'table' and now) or integer(now)
    if not base then return 'the value there is not an integer' end
    local sum = int64(base[1] + by[1], base[2] + by[2])
    if not sum then return 'the sum would pass the 64-bit range' end
    held[at] = sum
  elseif (kind == 'ZINCRBY' or kind == 'ZADD') and not finite(ARGV[a]) then
    return 'the score ' .. ARGV[a] .. ' is not a finite number'
  end
  return nil
end

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
  local name = ARGV[i]
  local kind = kinds[name]
  if not kind then return redis.error_reply('unknown write kind ' .. tostring(name)) end
  local k = tonumber(ARGV[i + 1])
  local key = k and KEYS[k]
  if not key or k < 2 then return redis.error_reply('bad key index in ' .. name) end
  if i + 1 + kind[2] > #ARGV then
    return redis.error_reply(name .. ' lacks arguments')
  end
  local now = types[key] or redis.call('TYPE', key)['ok']
  if kind[1] ~= 'any' and now ~= 'none' and now ~= kind[1] then
    return redis.error_reply(name .. ' on ' .. key .. ' which is a ' .. now)
  end
  local why = refused(name, key, i + 2)
  if why then return redis.error_reply(name .. ' on ' .. key .. ': ' .. why) end
  types[key] = (kind[1] == 'any') and 'none' or kind[1]
  writes[#writes + 1] = {name, key, i + 2, kind[2]}
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
