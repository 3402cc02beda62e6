"""The topic catalog: one topic per event family, plus dead letters and repairs."""

from __future__ import annotations

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


def partition_of(key: str, partitions: int) -> int:
    """The partition the log's producer sends a record keyed ``key`` to (the Java client's
    default partitioner, which aiokafka's follows: murmur2 of the key's bytes)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions
