"""The topic catalog: one topic per event family, plus dead letters and repairs."""

from __future__ import annotations

import random
from enum import StrEnum

from aiokafka.partitioner import murmur2


class Family(StrEnum):
    USERS = "users"
    ARTICLES = "articles"
    INTERACTIONS = "interactions"
    SOCIAL = "social"
    COMMENTS = "comments"


DLQ = "dlq"
REPAIR = "repair"


def topic_for(prefix: str, family: Family | str) -> str:
    return f"{prefix}.{family}"


def catalog(prefix: str) -> list[str]:
    return [topic_for(prefix, f) for f in Family] + [
        topic_for(prefix, DLQ),
        topic_for(prefix, REPAIR),
    ]


# Event topics are the source of truth: never deleted, never compacted. Their
# min.insync.replicas follows the replication factor (adapters/kafka.py).
TOPIC_CONFIG: dict[str, str] = {
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "cleanup.policy": "delete",
}


HASHES_KEPT = 65_536


class KeyPartitioner:
    """The producer's partitioner: the Java client's default (murmur2 of the key's bytes,
    as aiokafka's default partitioner), with the hashes of recent keys kept. murmur2 is
    pure Python in aiokafka, a few microseconds per record, and the same aggregates are
    written again and again (every like of an article is keyed by the article)."""

    def __init__(self, kept: int = HASHES_KEPT) -> None:
        self._kept = kept
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:  # every record of ours is keyed; as the default, for completeness
            return random.choice(available or all_partitions)
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._kept:
                self._hashes.clear()  # bounded; refilled by the keys in use
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def partition_of(key: str, partitions: int) -> int:
    """The partition the log's producer sends a record keyed ``key`` to (the Java client's
    default partitioner, which aiokafka's follows: murmur2 of the key's bytes)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions
