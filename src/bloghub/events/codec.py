"""Wire format: the envelope as JSON; type, version and event id also as Kafka headers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from bloghub.events.base import Envelope

Headers = list[tuple[str, bytes]]


class UndecodableEvent(ValueError):
    """A record that is not a bloghub event envelope."""


def encode(envelope: Envelope) -> tuple[bytes, Headers]:
    body = orjson.dumps(
        {
            "event_id": envelope.event_id,
            "type": envelope.type,
            "version": envelope.version,
            "aggregate_id": envelope.aggregate_id,
            "occurred_at": envelope.occurred_at,
            "actor_id": envelope.actor_id,
            "request_id": envelope.request_id,
            "payload": envelope.payload,
        }
    )
    headers = [
        ("type", envelope.type.encode()),
        ("version", str(envelope.version).encode()),
        ("event_id", envelope.event_id.encode()),
    ]
    return body, headers


def decode(value: bytes | None) -> Envelope:
    if not value:
        raise UndecodableEvent("empty record")
    try:
        raw: Any = orjson.loads(value)
        return Envelope(
            event_id=_str(raw, "event_id"),
            type=_str(raw, "type"),
            version=_int(raw, "version"),
            aggregate_id=_str(raw, "aggregate_id"),
            occurred_at=datetime.fromisoformat(_str(raw, "occurred_at")),
            actor_id=_opt_str(raw, "actor_id"),
            request_id=_opt_str(raw, "request_id"),
            payload=_dict(raw, "payload"),
        )
    except UndecodableEvent:
        raise
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
        raise UndecodableEvent(f"not an envelope: {exc}") from exc


def _str(raw: Any, key: str) -> str:
    value = raw[key] if isinstance(raw, dict) and key in raw else None
    if not isinstance(value, str) or not value:
        raise UndecodableEvent(f"field {key!r} missing or not a string")
    return value


def _opt_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise UndecodableEvent(f"field {key!r} not a string")
    return value


def _int(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UndecodableEvent(f"field {key!r} not a positive integer")
    return value


def _dict(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise UndecodableEvent(f"field {key!r} not an object")
    return value
