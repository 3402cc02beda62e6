"""How the personal fields of events are sealed for the log and read back.

The log keeps every event forever, so the fields a ``PersonalEvent`` names in ``PERSONAL``
(email, phone, WeChat ids, password hash, profile text) travel sealed under their user's
key (``auth/sealing.py``): in ``sealed``, with the fields themselves null on the wire. A
command fills the fields in and ``CommandDeps.record`` seals them; the users projector
reveals them with the keys of its batch. Once the user is erased their key is gone, and
every copy reads as blank: fields null, as if never given.

Version 1 of these events held the fields in clear. They stay as they were in the log
(events are never rewritten) and read as they are, until their person is erased.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError

from bloghub.auth.sealing import Unreadable, seal, unseal
from bloghub.events.users import PersonalEvent


class UnreadablePersonalFields(ValueError):
    """Sealed fields opened but are not what the event type holds. Names no value."""


P = TypeVar("P", bound=PersonalEvent)


def seal_event(event: P, key: bytes) -> P:
    """``event`` as it may go to the log: its personal fields sealed under ``key``."""
    if event.sealed is not None:
        return event
    fields = event.model_dump(mode="json", include=set(event.PERSONAL))
    token = seal(key, event.user_id, event.TYPE, fields)
    return event.model_copy(update={**dict.fromkeys(event.PERSONAL), "sealed": token})


def blank(event: P) -> P:
    """``event`` with its personal fields unknown: what an erased user's events read as."""
    return event.model_copy(update={**dict.fromkeys(event.PERSONAL), "sealed": None})


def reveal(event: P, key: bytes | None, *, erased: bool) -> P:
    """``event`` with its personal fields readable, or blank if they cannot be read: the user
    is erased, or no key opens them (never guessed, never a partial read)."""
    if erased:
        return blank(event)
    if event.sealed is None:
        return event  # written in clear, before sealing
    try:
        fields = unseal(key, event.user_id, event.TYPE, event.sealed)
    except Unreadable:
        return blank(event)
    return _with_fields(event, fields)


def reveal_text(event: PersonalEvent, key: bytes | None, *, erased: bool) -> dict[str, Any]:
    """What ``reveal`` gives, as a dict of the personal fields, for an event whose personal
    fields are all text: no model is built (registrations, the hot path of every replay)."""
    if erased:
        return dict.fromkeys(event.PERSONAL)
    if event.sealed is None:
        return {name: getattr(event, name) for name in event.PERSONAL}
    try:
        fields = unseal(key, event.user_id, event.TYPE, event.sealed)
    except Unreadable:
        return dict.fromkeys(event.PERSONAL)
    if not set(fields) <= event.PERSONAL or any(
        value is not None and type(value) is not str for value in fields.values()
    ):
        raise _unfit(event)
    return {name: fields.get(name) for name in event.PERSONAL}


def _with_fields(event: P, fields: dict[str, Any]) -> P:
    if not set(fields) <= event.PERSONAL:
        raise _unfit(event)
    try:
        return type(event).model_validate({**event.__dict__, **fields, "sealed": None})
    except ValidationError:
        raise _unfit(event) from None


def _unfit(event: PersonalEvent) -> UnreadablePersonalFields:
    # pydantic's message would quote the values: this one must not.
    return UnreadablePersonalFields(
        f"the sealed fields of {event.TYPE} {event.user_id} do not fit its type"
    )
