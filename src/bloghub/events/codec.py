"""Wire format: the envelope as JSON; type, version and event id also as Kafka headers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, NoReturn

import msgspec
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


Text = Annotated[str, msgspec.Meta(min_length=1)]


class _Wire(msgspec.Struct, gc=False):
    """The envelope as ``decode`` takes it in one pass: each field's JSON type checked as it
    is read, no dict of the envelope made. ``occurred_at`` stays text, parsed as the checked
    path parses it, so both accept the very same times."""

    event_id: Text
    type: Text
    # Past 64 bits orjson reads a float (refused), msgspec an int: the checked path decides.
    version: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    aggregate_id: Text
    occurred_at: Text
    payload: dict[str, Any]
    actor_id: str | None = None
    request_id: str | None = None


_wire = msgspec.json.Decoder(_Wire)
_parse_time = datetime.fromisoformat


def decode(value: bytes | None) -> Envelope:
    """The envelope in ``value``; ``UndecodableEvent`` naming what is wrong otherwise.

    Every projector pays this per event: an envelope is read in one pass by msgspec
    (0.5 µs against 1.2 for a dict from orjson, then each field checked), and only what
    that pass refuses goes the checked way, which says what is wrong or, for JSON msgspec
    reads otherwise, decodes it as before. The one difference: an integer in a payload
    past 64 bits (which bloghub never writes) comes exact, where orjson made it a float."""
    if not value:
        raise UndecodableEvent("empty record")
    try:
        w = _wire.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _decode_checked(value)
    try:
        at = _parse_time(w.occurred_at)
    except ValueError as exc:
        raise UndecodableEvent(f"not an envelope: occurred_at: {exc}") from exc
    return tuple.__new__(
        Envelope,
        (w.event_id, w.type, w.version, w.aggregate_id, at, w.actor_id, w.request_id, w.payload),
    )


def _decode_checked(value: bytes) -> Envelope:
    try:
        raw: Any = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise UndecodableEvent(f"not an envelope: {exc}") from exc
    if type(raw) is not dict:
        raise UndecodableEvent("not an envelope: not a JSON object")
    get = raw.get
    event_id, type_, version = get("event_id"), get("type"), get("version")
    aggregate_id, occurred_at, payload = get("aggregate_id"), get("occurred_at"), get("payload")
    actor_id, request_id = get("actor_id"), get("request_id")
    # One test for the usual case (every projector pays it per event); the checks in
    # _refuse say what is wrong otherwise. JSON gives exact types, so ``type(...) is``
    # suffices, and it keeps booleans out of the version.
    if not (
        type(event_id) is str
        and event_id
        and type(type_) is str
        and type_
        and type(version) is int
        and version >= 1
        and type(aggregate_id) is str
        and aggregate_id
        and type(occurred_at) is str
        and (actor_id is None or type(actor_id) is str)
        and (request_id is None or type(request_id) is str)
        and type(payload) is dict
    ):
        _refuse(raw)
    try:
        at = datetime.fromisoformat(occurred_at)
    except ValueError as exc:
        raise UndecodableEvent(f"not an envelope: occurred_at: {exc}") from exc
    # tuple.__new__ rather than the named tuple's own __new__, a Python function: a third
    # of the cost, paid per event by every projector.
    return tuple.__new__(
        Envelope, (event_id, type_, version, aggregate_id, at, actor_id, request_id, payload)
    )


def _refuse(raw: dict[str, Any]) -> NoReturn:
    """Raise ``UndecodableEvent`` naming the first field that is wrong."""
    for key in ("event_id", "type", "aggregate_id", "occurred_at"):
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            raise UndecodableEvent(f"field {key!r} missing or not a string")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UndecodableEvent("field 'version' not a positive integer")
    for key in ("actor_id", "request_id"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise UndecodableEvent(f"field {key!r} not a string")
    if not isinstance(raw.get("payload"), dict):
        raise UndecodableEvent("field 'payload' not an object")
    raise UndecodableEvent("not an envelope")
