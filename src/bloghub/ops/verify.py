"""``bloghub replay verify NAME A B``: compare two generations of a projector, store by
store (row counts and checksums per table and sampled differing rows; Redis keys and
values; index document counts and sampled documents). No difference: an empty list."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.tables import READ_MODELS
from bloghub.ops.generations_admin import ReplayRefused, projector_class, require_generations
from bloghub.projections.redis_sink import RedisProjector
from bloghub.projections.search_sink import SearchProjector
from bloghub.projections.stores import Stores

# Each row as text, hashed, in an order that does not depend on how it was written.
_SUMMARY = """
SELECT count(*) AS n,
       coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') AS checksum
FROM {table} t
"""
_ONLY_IN = "SELECT t::text AS row FROM {a} t EXCEPT SELECT t::text FROM {b} t LIMIT :k"


async def verify_generations(
    stores: Stores, name: str, a: int, b: int, *, samples: int = 5
) -> list[str]:
    """Refused (before anything is compared) unless both generations exist."""
    cls = projector_class(name)
    await require_generations(stores, name, a, b)
    first, second = cls.from_stores(stores, generation=a), cls.from_stores(stores, generation=b)
    if isinstance(first, SearchProjector) and isinstance(second, SearchProjector):
        await _require_indexes(stores, name, {a: first.index, b: second.index})
    found = await _postgres(stores.engine, name, a, b, samples)
    if isinstance(first, RedisProjector) and isinstance(second, RedisProjector):
        found += await _redis(stores.redis, first.keyspace, second.keyspace, samples)
    if isinstance(first, SearchProjector) and isinstance(second, SearchProjector):
        found += await _search(stores, first.index, second.index, samples)
    return found


async def _require_indexes(stores: Stores, name: str, indexes: dict[int, str]) -> None:
    # A generation served by default has no index until its projector has run once.
    for generation, index in indexes.items():
        if not await stores.search.indices.exists(index=index):
            raise ReplayRefused(f"{name} generation {generation} has no index ({index}) yet")


async def _postgres(engine: AsyncEngine, name: str, a: int, b: int, samples: int) -> list[str]:
    model = READ_MODELS.get(name)
    if model is None:
        return []
    out: list[str] = []
    schemas = schema_name(name, a), schema_name(name, b)
    async with engine.connect() as conn:
        for table in model.sorted_tables:
            qa, qb = (f'"{s}"."{table.name}"' for s in schemas)
            ra = (await conn.execute(text(_SUMMARY.format(table=qa)))).one()
            rb = (await conn.execute(text(_SUMMARY.format(table=qb)))).one()
            if tuple(ra) == tuple(rb):
                continue
            out.append(
                f"{table.name}: g{a} has {ra.n} rows (checksum {ra.checksum[:12]}), "
                f"g{b} has {rb.n} rows (checksum {rb.checksum[:12]})"
            )
            for x, y, gx in ((qa, qb, a), (qb, qa, b)):
                rows = await conn.execute(text(_ONLY_IN.format(a=x, b=y)), {"k": samples})
                out += [f"{table.name}: only in g{gx}: {r.row}" for r in rows]
    return out


async def _redis(redis: Redis, space_a: str, space_b: str, samples: int) -> list[str]:
    keys_a = await _keys(redis, space_a)
    keys_b = await _keys(redis, space_b)
    out: list[str] = []
    if len(keys_a) != len(keys_b):
        out.append(f"redis: {space_a} has {len(keys_a)} keys, {space_b} has {len(keys_b)}")
    for missing, there, here in (
        (keys_a - keys_b, space_a, space_b),
        (keys_b - keys_a, space_b, space_a),
    ):
        out += [f"redis: {there}:{k}: none in {here}" for k in sorted(missing)[:samples]]
    differing = 0
    for key in sorted(keys_a & keys_b):
        va, vb = await _value(redis, f"{space_a}:{key}"), await _value(redis, f"{space_b}:{key}")
        if va != vb:
            differing += 1
            if differing <= samples:
                out.append(f"redis: {key}: {va!r} in {space_a}, {vb!r} in {space_b}")
    if differing > samples:
        out.append(f"redis: {differing} keys differ in all")
    return out


async def _keys(redis: Redis, space: str) -> set[str]:
    """The keys of a keyspace, relative to it, without its checkpoint."""
    out = set()
    async for raw in redis.scan_iter(match=f"{space}:*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        rest = key[len(space) + 1 :]
        if rest != "checkpoint":
            out.add(rest)
    return out


async def _value(redis: Redis, key: str) -> Any:
    kind = await redis.type(key)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind == "string":
        return await redis.get(key)
    if kind == "hash":
        return await redis.hgetall(key)
    if kind == "set":
        return sorted(await redis.smembers(key))
    if kind == "zset":
        return await redis.zrange(key, 0, -1, withscores=True)
    if kind == "list":
        return await redis.lrange(key, 0, -1)
    return kind


async def _search(stores: Stores, index_a: str, index_b: str, samples: int) -> list[str]:
    client = stores.search
    await client.indices.refresh(index=f"{index_a},{index_b}")
    count_a = (await client.count(index=index_a))["count"]
    count_b = (await client.count(index=index_b))["count"]
    out = []
    if count_a != count_b:
        out.append(f"search: {index_a} has {count_a} documents, {index_b} has {count_b}")
    hits = (await client.search(index=index_a, body={"size": samples}))["hits"]["hits"]
    if hits:
        others = await client.mget(index=index_b, body={"ids": [h["_id"] for h in hits]})
        for hit, other in zip(hits, others["docs"], strict=True):
            if other.get("_source") != hit["_source"]:
                out.append(f"search: document {hit['_id']} differs between the indexes")
    return out
