from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bloghub.errors import CodeBehind
from bloghub.events.base import (
    Envelope,
    Event,
    EventRegistry,
    UnknownEventType,
    envelop,
    registry,
)
from bloghub.events.codec import UndecodableEvent, _decode_checked, decode, encode
from bloghub.events.topics import Family
from bloghub.events.users import UserRegistered

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3)
    ),
    max_leaves=10,
)


@given(payload=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_envelope_round_trips(payload: dict[str, Any]) -> None:
    env = Envelope(
        event_id="e1",
        type="user.registered",
        version=1,
        aggregate_id="u1",
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        actor_id=None,
        request_id="r1",
        payload=payload,
    )
    body, headers = encode(env)
    assert decode(body) == env
    assert dict(headers) == {"type": b"user.registered", "version": b"1", "event_id": b"e1"}


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[]", b'{"type": "x"}', b'{"event_id": 1}', None]
)
def test_garbage_is_undecodable(raw: bytes | None) -> None:
    with pytest.raises(UndecodableEvent):
        decode(raw)


GOOD: dict[str, Any] = {
    "event_id": "e1",
    "type": "user.registered",
    "version": 1,
    "aggregate_id": "u1",
    "occurred_at": "2026-01-02T03:04:05+00:00",
    "actor_id": None,
    "request_id": "r1",
    "payload": {"user_id": "u1"},
}
BROKEN: dict[str, list[Any]] = {
    "event_id": ["", 1, None, ["e1"]],
    "type": ["", 1.5, None, {}],
    "version": [0, -1, True, 1.0, "1", None],
    "aggregate_id": ["", 7, None],
    "occurred_at": ["", "yesterday", "2026-13-01T00:00:00", 1700000000, None],
    "actor_id": [1, [], False],
    "request_id": [{}, 2.5],
    "payload": [None, [], "x", 1],
}


@given(
    field=st.sampled_from(sorted(BROKEN)),
    pick=st.integers(min_value=0),
    missing=st.booleans(),
)
def test_an_envelope_with_any_field_wrong_is_undecodable(
    field: str, pick: int, missing: bool
) -> None:
    doc = dict(GOOD)
    if missing and field not in ("actor_id", "request_id"):
        del doc[field]
    else:
        doc[field] = BROKEN[field][pick % len(BROKEN[field])]
    with pytest.raises(UndecodableEvent) as refused:
        decode(orjson.dumps(doc))
    assert field in str(refused.value) or "occurred_at" in str(refused.value)


# Values for any envelope field: of every JSON type, the edges of what each field takes
# (empty, booleans, 0, the 64-bit bounds and past them, times in forms one parser might
# take and another not), and nesting.
TIMES = [
    "2026-01-02T03:04:05Z",
    "2026-01-02t03:04:05z",
    "2026-01-02 03:04:05+00:00",
    "2026-01-02T03:04:05",
    "2026-01-02",
    "2026-01-02T03:04:05.1234567+00:00",
    "20260102T030405Z",
    "2026-01-02T03:04:60+00:00",
    "2026-01-02T03:04+00:00",
]
odd_values = (
    json_values
    | st.sampled_from(["", "x", 0, 1, True, 1.0, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), *TIMES])
    | st.dictionaries(st.text(max_size=5), json_values, max_size=3)
)


def _outcome(decoder: Callable[[bytes], Envelope], raw: bytes) -> Envelope | str:
    try:
        return decoder(raw)
    except UndecodableEvent as exc:
        return f"undecodable: {exc}"


@given(
    changes=st.dictionaries(st.sampled_from([*GOOD, "extra"]), odd_values, max_size=3),
    dropped=st.sets(st.sampled_from(list(GOOD)), max_size=2),
)
def test_the_one_pass_decodes_what_the_checked_path_does_and_refuses_the_same(
    changes: dict[str, Any], dropped: set[str]
) -> None:
    """``decode`` reads an envelope in one typed pass and leaves what that refuses to the
    checked path: whatever the envelope, the outcome is the checked path's, envelope or
    message alike."""
    doc = {k: v for k, v in {**GOOD, **changes}.items() if k not in dropped}
    raw = orjson.dumps(doc)
    assert _outcome(decode, raw) == _outcome(_decode_checked, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id":"e1","event_id":"e2","type":"t","version":1,"aggregate_id":"a",'
        b'"occurred_at":"2026-01-02T03:04:05+00:00","payload":{}}',
        b'{"event_id":"e1","type":"t","version":18446744073709551616,"aggregate_id":"a",'
        b'"occurred_at":"2026-01-02T03:04:05+00:00","payload":{}}',
        b'{"event_id":"e1","type":"t","version":1,"aggregate_id":"a",'
        b'"occurred_at":"2026-01-02T03:04:05+00:00","payload":{"s":"\\ud800"}}',
        b'{"event_id":"e1","type":"t","version":1,"aggregate_id":"a",'
        b'"occurred_at":"2026-01-02T03:04:05+00:00","payload":{"n":1e400}}',
        b'{"event_id":"\\u00e9","type":"t","version":1,"aggregate_id":"a",'
        b'"occurred_at":"2026-01-02T03:04:05+00:00","payload":{"a":[1,{"b":null}]}}',
        b"\xff\xfe",
        b'{"event_id":"e1"',
    ],
)
def test_json_the_two_paths_could_read_apart_decodes_alike(raw: bytes) -> None:
    """Duplicate keys (the last wins in both), a version past 64 bits, a lone surrogate,
    a number out of range, escapes, bytes that are not UTF-8, a cut record."""
    assert _outcome(decode, raw) == _outcome(_decode_checked, raw)


@pytest.mark.parametrize("at", TIMES)
def test_times_in_any_form_decode_alike(at: str) -> None:
    raw = orjson.dumps({**GOOD, "occurred_at": at})
    assert _outcome(decode, raw) == _outcome(_decode_checked, raw)


def test_a_good_envelope_decodes_with_its_optional_fields_absent() -> None:
    doc = {k: v for k, v in GOOD.items() if k not in ("actor_id", "request_id")}
    env = decode(orjson.dumps(doc))
    assert (env.actor_id, env.request_id) == (None, None)
    assert env.occurred_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert env.payload == {"user_id": "u1"}


def test_envelop_fills_the_envelope() -> None:
    env = envelop(
        UserRegistered(user_id="u1", email="a@b.c", password_hash="h"),
        actor_id="u1",
        request_id="r",
    )
    assert (env.type, env.version, env.aggregate_id) == ("user.registered", 2, "u1")
    assert env.occurred_at.tzinfo is not None


def test_old_versions_are_upcast_on_read() -> None:
    reg = EventRegistry()

    @reg.register
    class Renamed(Event):
        TYPE: ClassVar[str] = "thing.renamed"
        VERSION: ClassVar[int] = 2
        FAMILY: ClassVar[Family] = Family.USERS
        AGGREGATE: ClassVar[str] = "thing_id"
        thing_id: str
        title: str

    @reg.upcaster("thing.renamed", 1)
    def v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
        return {"thing_id": payload["thing_id"], "title": payload["name"]}

    old = Envelope(
        "e",
        "thing.renamed",
        1,
        "t",
        datetime.now(UTC),
        None,
        None,
        {"thing_id": "t", "name": "old name"},
    )
    assert reg.materialise(old) == Renamed(thing_id="t", title="old name")
    future = Envelope("e", "thing.renamed", 3, "t", datetime.now(UTC), None, None, {})
    with pytest.raises(UnknownEventType):
        reg.materialise(future)


def _registration(payload: dict[str, Any], *, type_: str = "user.registered") -> Envelope:
    return Envelope("e", type_, 1, "u", datetime.now(UTC), None, None, payload)


def test_events_newer_than_the_code_are_code_behind_not_bad_events() -> None:
    reg = registry  # every event type this code knows, with their upcasters
    known = {"user_id": "u", "email": "a@example.com", "password_hash": "h"}
    with pytest.raises(CodeBehind):
        reg.materialise(_registration({**known, "locale": "zh-CN"}))
    with pytest.raises(CodeBehind):
        reg.materialise(_registration(known, type_="user.nicknamed"))
    # A field missing or malformed is the event's own fault, whatever code reads it.
    with pytest.raises(ValidationError) as missing:
        reg.materialise(_registration({"email": "a@example.com", "password_hash": "h"}))
    assert not isinstance(missing.value, CodeBehind)
    with pytest.raises(ValidationError) as mixed:
        reg.materialise(_registration({"user_id": "u", "email": 3, "locale": "x"}))
    assert not isinstance(mixed.value, CodeBehind)
