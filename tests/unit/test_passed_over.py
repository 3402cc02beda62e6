"""A projector's batches leave out, undecoded, the records of events it passes over, known
by the headers the log writes beside every envelope; everything else is decoded as before.
What each projector says it passes over agrees with what it does with such an event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from bloghub.events.articles import ArticleDrafted, ArticlePublished
from bloghub.events.base import Event, envelop, registry
from bloghub.events.codec import encode
from bloghub.events.topics import Family
from bloghub.ids import new_id_str
from bloghub.projections.catalog import PROJECTORS
from bloghub.projections.decoding import PassedOver, decode_fetch
from bloghub.projections.interactions import InteractionsProjector
from bloghub.projections.notifications import NotificationsProjector
from bloghub.projections.postgres_sink import PostgresProjector
from bloghub.projections.search import ArticleSearchProjector
from bloghub.projections.search_sink import SearchProjector
from bloghub.projections.social import SocialProjector
from bloghub.projections.user_search import UserSearchProjector
from bloghub.projections.users import UsersProjector
from tests.support import recorded

TOPIC = "t.articles"


@dataclass
class Raw:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    timestamp: int = 0


def raw(event: Event, offset: int, headers: Sequence[tuple[str, bytes]] | None = None) -> Raw:
    value, written = encode(envelop(event, actor_id=None, request_id=None))
    return Raw(TOPIC, 0, offset, value, written if headers is None else headers)


def drafted() -> ArticleDrafted:
    return ArticleDrafted(
        article_id=new_id_str(), author_id=new_id_str(), version=1, title="T", content="c", tags=[]
    )


def published() -> ArticlePublished:
    return ArticlePublished(
        article_id=new_id_str(), author_id=new_id_str(), version=2, title="T", content="c", tags=[]
    )


def fetched(records: Sequence[Raw], passed_over: PassedOver | None) -> tuple[list[int], int]:
    """The offsets of the records decoded for the projector, and where the part ends."""
    (part,) = decode_fetch(registry, {TopicPartition(TOPIC, 0): records}, passed_over)
    return [r.offset for r in part.good], part.end


def social() -> PassedOver:
    engine: Any = None
    return PassedOver(registry, SocialProjector(engine).passes_over)


def test_drafts_are_left_out_of_the_social_projectors_batches_undecoded() -> None:
    # The first draft's body is no event at all: it is never read, so nothing says so.
    broken = raw(drafted(), 0)
    broken.value = b"\xff not an event"
    records = [broken, raw(published(), 1), raw(drafted(), 2)]
    assert fetched(records, social()) == ([1], 3)  # the checkpoint still passes them all
    assert fetched(records[1:], None) == ([1, 2], 3)  # without it, every one is decoded


@pytest.mark.parametrize(
    "headers",
    [
        [],  # none: decoded, as a record from before the headers
        [("type", b"article.drafted")],  # no version
        [("type", b"article.drafted"), ("version", b"2")],  # newer than the code
        [("type", b"article.drafted"), ("version", b"01")],  # not as the log writes it
        [("type", b"article.no_such_event"), ("version", b"1")],
        [("type", b"\xff\xfe"), ("version", b"1")],
    ],
)
def test_a_record_whose_headers_do_not_name_a_current_event_is_decoded(
    headers: list[tuple[str, bytes]],
) -> None:
    assert fetched([raw(drafted(), 0, headers)], social()) == ([0], 1)


def test_a_record_of_an_event_not_passed_over_is_decoded_however_its_body_reads() -> None:
    broken = raw(published(), 0)
    broken.value = b"\xff not an event"
    (part,) = decode_fetch(registry, {TopicPartition(TOPIC, 0): [broken]}, social())
    assert part.good == []
    assert len(part.undecodable) == 1  # dead-lettered as before


def _built(name: str) -> PostgresProjector | SearchProjector:
    cls = PROJECTORS[name]
    nothing: Any = None
    if cls is NotificationsProjector:
        return NotificationsProjector(nothing, prefix="p")
    if cls is ArticleSearchProjector:
        return ArticleSearchProjector(nothing, nothing, prefix="p")
    if cls is UserSearchProjector:
        return UserSearchProjector(nothing, nothing, master=nothing, prefix="p")
    if cls is UsersProjector:
        return UsersProjector(nothing, master=nothing)
    assert issubclass(cls, PostgresProjector)
    return cls(nothing)


def _events_of(families: tuple[Family, ...]) -> st.SearchStrategy[Event]:
    models = [m for m in registry.models() if m.FAMILY in families]
    return st.sampled_from(models).flatmap(st.builds)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_what_a_projector_passes_over_it_would_do_nothing_with(data: st.DataObject) -> None:
    """For every projector and any event of its topics: a Postgres projector passes over
    exactly the events it is not concerned with (each goes by the model alone); a search
    projector passes over only events that change no document."""
    projector = _built(data.draw(st.sampled_from(sorted(PROJECTORS))))
    event = data.draw(_events_of(projector.families))
    rec = recorded(event, topic=TOPIC, partition=0, offset=0)
    passed = projector.passes_over(type(event))
    if isinstance(projector, SearchProjector):
        assert not passed or projector.doc_id(rec) is None
    else:
        assert passed == (not projector.concerns(rec))


def test_the_projectors_that_pass_over_drafts() -> None:
    """The four that read the articles topic for other events (the articles projector
    keeps drafts)."""
    readers = [_built(n) for n in PROJECTORS if Family.ARTICLES in PROJECTORS[n].families]
    passing = {p.name for p in readers if p.passes_over(ArticleDrafted)}
    assert passing == {"social", "interactions", "notifications", ArticleSearchProjector.name}
    engine: Any = None
    assert not InteractionsProjector(engine).passes_over(ArticlePublished)
