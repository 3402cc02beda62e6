"""Envelope, typed event models and the registry that maps wire types to models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bloghub.errors import CodeBehind
from bloghub.events.topics import Family
from bloghub.ids import new_id_str


class Event(BaseModel):
    """A fact, named in the past tense. Subclasses set ``TYPE``, ``VERSION`` and ``FAMILY``
    and name the field that holds their aggregate in ``AGGREGATE``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    FAMILY: ClassVar[Family]
    AGGREGATE: ClassVar[str]

    def aggregate_id(self) -> str:
        return str(getattr(self, self.AGGREGATE))


# Envelopes and recorded events are named tuples, not frozen dataclasses: just as
# immutable, and made for every event a projector reads, where a frozen dataclass's
# field-by-field __init__ costs twice as much (bench/projector.py).
class Envelope(NamedTuple):
    event_id: str
    type: str
    version: int
    aggregate_id: str
    occurred_at: datetime
    actor_id: str | None
    request_id: str | None
    payload: dict[str, Any]


class Recorded(NamedTuple):
    """An event as read back from the log, with where it was read."""

    envelope: Envelope
    event: Event
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


def envelop(
    event: Event,
    *,
    actor_id: str | None,
    request_id: str | None,
    occurred_at: datetime | None = None,
) -> Envelope:
    """``occurred_at``: when the command that made it decided it happened (now if not)."""
    return Envelope(
        event_id=new_id_str(),
        type=event.TYPE,
        version=event.VERSION,
        aggregate_id=event.aggregate_id(),
        occurred_at=datetime.now(UTC) if occurred_at is None else occurred_at,
        actor_id=actor_id,
        request_id=request_id,
        payload=event.model_dump(mode="json"),
    )


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
E = TypeVar("E", bound=type[Event])


class UnknownEventType(CodeBehind, LookupError):
    """A type, or a version of it, that this code does not know yet."""


class UnknownEventField(CodeBehind, ValueError):
    """A payload with a field this code's model of the event does not know yet."""


class EventRegistry:
    """Wire type → model, with upcasters from every older version to the current one."""

    def __init__(self) -> None:
        self._models: dict[str, type[Event]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        # Per wire type: its model's version and pydantic-core's validator, called
        # directly. ``model_validate`` is the same validation behind a Python wrapper
        # that cost as much again as validating an interaction event (0.8 of 2 µs).
        self._validators: dict[str, tuple[int, Callable[[dict[str, Any]], Event]]] = {}

    def register(self, model: E) -> E:
        if model.TYPE in self._models:
            raise ValueError(f"event type {model.TYPE!r} registered twice")
        self._models[model.TYPE] = model
        self._validators[model.TYPE] = (
            model.VERSION,
            model.__pydantic_validator__.validate_python,
        )
        return model

    def upcaster(self, type_: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        def wrap(fn: Upcaster) -> Upcaster:
            self._upcasters[(type_, from_version)] = fn
            return fn

        return wrap

    def model(self, type_: str) -> type[Event]:
        try:
            return self._models[type_]
        except KeyError:
            raise UnknownEventType(type_) from None

    def family(self, type_: str) -> Family:
        return self.model(type_).FAMILY

    def models(self) -> list[type[Event]]:
        """Every event model registered, in the order of registration."""
        return list(self._models.values())

    def materialise(self, envelope: Envelope) -> Event:
        try:
            current, validate = self._validators[envelope.type]
        except KeyError:
            raise UnknownEventType(envelope.type) from None
        payload, version = envelope.payload, envelope.version
        while version < current:
            step = self._upcasters.get((envelope.type, version))
            if step is None:
                raise UnknownEventType(f"{envelope.type} v{version}: no upcaster")
            payload, version = step(payload), version + 1
        if version > current:
            raise UnknownEventType(f"{envelope.type} v{version} is newer than this code")
        try:
            return validate(payload)
        except ValidationError as exc:
            # Only fields the model lacks mean newer code wrote it; a missing or malformed
            # field is the event's own fault.
            extra = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
            if extra and len(extra) == exc.error_count():
                raise UnknownEventField(f"{envelope.type} v{version}: unknown {extra}") from exc
            raise


registry = EventRegistry()
