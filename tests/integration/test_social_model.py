"""The social and comments read models against models of their rules, on the real
PostgreSQL: any run of follows, unfollows and erasures of accounts gives counts equal to
the relation sets (an erased account in none, whichever family is read first);
comment trees after any run of posts and deletes equal a model's; and a replay (the same
log in other batches, with re-deliveries) builds the same tables as the live run."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bloghub.adapters.postgres.generations import create_generation
from bloghub.events.base import Event, Recorded
from bloghub.events.comments import CommentDeleted, CommentPosted
from bloghub.events.social import UserFollowed, UserUnfollowed
from bloghub.events.users import UserErased
from bloghub.ids import new_id_str
from bloghub.projections.comments import CommentsProjector
from bloghub.projections.postgres_sink import PostgresProjector, projector_engine
from bloghub.projections.social import SocialProjector
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.support import ArticleBook, against_the_store, batches, recorded

USERS = [new_id_str() for _ in range(5)]
LIVE, REPLAY = 2, 3
SPLITS = st.lists(st.integers(1, 8), min_size=1, max_size=6)
HYPOTHESIS = against_the_store(40)


@dataclass
class Rig:
    settings: Settings
    social: dict[int, SocialProjector]
    comments: dict[int, CommentsProjector]


@pytest.fixture(scope="module")
async def rig(run_id: str) -> AsyncIterator[Rig]:
    async with isolated(run_id, "socialmodel") as s:
        engine = projector_engine(s.sqlalchemy_url, pool_size=2)
        try:
            async with engine.begin() as conn:
                for name, generation in itertools.product(("social", "comments"), (LIVE, REPLAY)):
                    await create_generation(conn, name, generation, activate=False)
            yield Rig(
                s,
                {g: SocialProjector(engine, generation=g) for g in (LIVE, REPLAY)},
                {g: CommentsProjector(engine, generation=g) for g in (LIVE, REPLAY)},
            )
        finally:
            await engine.dispose()


def as_read(events: Sequence[tuple[str, str, Event]]) -> list[Recorded]:
    """(topic, key, event) as read from the log: each key's events on one of three
    partitions of its topic, in order."""
    offsets: Counter[tuple[str, int]] = Counter()
    out = []
    for topic, key, event in events:
        tp = (topic, USERS.index(key) % 3 if key in USERS else hash(key) % 3)
        out.append(recorded(event, topic=topic, partition=tp[1], offset=offsets[tp]))
        offsets[tp] += 1
    return out


async def project(projector: PostgresProjector, records: list[Recorded], sizes: list[int]) -> None:
    """Apply in batches of ``sizes``; every batch is delivered twice, as after a crash
    between the commit and the offset commit (the second changes nothing)."""
    for batch in batches(records, sizes):
        ends = {(r.topic, r.partition): r.offset + 1 for r in batch}
        for _ in range(2):
            await projector.apply(batch, ends)


async def dump_then_empty(s: Settings, schema: str, tables: dict[str, str]) -> dict[str, Any]:
    """Every row of ``tables`` (name → ORDER BY), then the generation emptied for the
    next example, checkpoints included."""
    generation = int(schema.rsplit("_g", 1)[1])
    conn = await asyncpg.connect(s.asyncpg_dsn)
    try:
        out = {
            t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {schema}.{t} ORDER BY {o}")]
            for t, o in tables.items()
        }
        await conn.execute(
            f"TRUNCATE {', '.join(f'{schema}.{t}' for t in tables)}; "
            f"DELETE FROM projector_checkpoints WHERE generation = {generation} "
            f"AND projector = '{schema.rsplit('_g', 1)[0]}'"
        )
    finally:
        await conn.close()
    return out


# --- follows --------------------------------------------------------------------------

FollowStep = tuple[bool, int, int]  # follow (else unfollow), follower, followee
FOLLOWS = st.lists(
    st.tuples(st.booleans(), st.integers(0, 4), st.integers(0, 4)).filter(lambda s: s[1] != s[2]),
    max_size=40,
)
ArticleStep = tuple[str, int]
ARTICLE_STEPS = st.lists(
    st.tuples(st.sampled_from(["create", "publish", "withdraw", "delete"]), st.integers(0, 3)),
    max_size=15,
)
ERASURES = st.lists(st.integers(0, 4), max_size=2)
SOCIAL_TABLES = {
    "follows": "follower_id, followee_id",
    "follow_counts": "user_id",
    "feed_articles": "article_id",
    "erased_users": "user_id",
}


def follow_log(steps: Sequence[FollowStep]) -> tuple[list[tuple[str, str, Event]], set[Any]]:
    """The events of ``steps`` (repeats included: two requests may race past the
    command's check) and the relation set they leave."""
    relation: set[tuple[str, str]] = set()
    out: list[tuple[str, str, Event]] = []
    for follow, a, b in steps:
        pair = (USERS[a], USERS[b])
        kind = UserFollowed if follow else UserUnfollowed
        out.append(("social", pair[0], kind(follower_id=pair[0], followee_id=pair[1])))
        (relation.add if follow else relation.discard)(pair)
    return out, relation


def erasure_log(which: Sequence[int]) -> tuple[list[tuple[str, str, Event]], set[str]]:
    """Erasures of the accounts ``which`` names (an account erased twice: a retried
    request), and the accounts erased."""
    erased = [USERS[i] for i in which]
    return [("users", u, UserErased(user_id=u)) for u in erased], set(erased)


def article_log(steps: Sequence[ArticleStep]) -> tuple[list[tuple[str, str, Event]], set[str]]:
    """Article events of one author and the ids of those left published."""
    book = ArticleBook(author=USERS[0])
    out: list[tuple[str, str, Event]] = []
    for op, which in steps:
        ids = list(book.articles)
        if op == "create" or not ids:
            event: Event | None = book.create([])
        else:
            chosen = ids[which % len(ids)]
            event = {
                "publish": book.publish,
                "withdraw": book.withdraw,
                "delete": book.delete,
            }[op](chosen)
        if event is not None:
            out.append(("articles", event.article_id, event))  # type: ignore[attr-defined]
    published = {i for i, a in book.articles.items() if a.published_tags is not None}
    return out, published


def interleave(first: list[Any], second: list[Any], pattern: list[int]) -> list[Any]:
    """Both lists merged in their own orders, the topics taking turns as ``pattern`` says."""
    a, b = list(first), list(second)
    out: list[Any] = []
    for n in itertools.cycle(pattern):
        if not a and not b:
            return out
        out += a[:n] + b[:1]
        a, b = a[n:], b[1:]
    raise AssertionError("unreachable")


@HYPOTHESIS
@given(follows=FOLLOWS, articles=ARTICLE_STEPS, erasures=ERASURES, live=SPLITS, replay=SPLITS)
@example(
    follows=[(True, 0, 1), (True, 0, 1), (False, 0, 1), (False, 0, 1), (True, 2, 1)],
    articles=[("create", 0), ("publish", 0), ("withdraw", 0), ("publish", 0)],
    erasures=[],
    live=[1],
    replay=[50],
)
# An erasure read before and after the follows by and of the account.
@example(
    follows=[(True, 0, 1), (True, 1, 2), (True, 2, 1), (True, 3, 4)],
    articles=[],
    erasures=[1],
    live=[50],
    replay=[1],
)
async def test_follow_counts_equal_the_relation_sets_and_replay_equals_live(
    rig: Rig,
    follows: list[FollowStep],
    articles: list[ArticleStep],
    erasures: list[int],
    live: list[int],
    replay: list[int],
) -> None:
    follow_events, followed = follow_log(follows)
    article_events, published = article_log(articles)
    erasure_events, erased = erasure_log(erasures)
    relation = {(a, b) for a, b in followed if a not in erased and b not in erased}
    others = interleave(article_events, erasure_events, [3])
    records = as_read(interleave(follow_events, others, live))
    await project(rig.social[LIVE], records, live)
    # A replay reads the same partitions in another interleaving and other batches.
    await project(rig.social[REPLAY], as_read(interleave(follow_events, others, replay)), replay)

    tables = await dump_then_empty(rig.settings, f"social_g{LIVE}", SOCIAL_TABLES)
    rebuilt = await dump_then_empty(rig.settings, f"social_g{REPLAY}", SOCIAL_TABLES)

    assert {(str(r[0]), str(r[1])) for r in tables["follows"]} == relation
    counts = {str(r[0]): (r[1], r[2]) for r in tables["follow_counts"]}
    for user in USERS:
        followers = sum(1 for _, b in relation if b == user)
        followees = sum(1 for a, _ in relation if a == user)
        assert counts.get(user, (0, 0)) == (followers, followees)
    visible = {str(r[0]) for r in tables["feed_articles"] if r[4]}
    assert visible == published
    assert {str(r[0]) for r in tables["erased_users"]} == erased
    # Rows equal but for the event times, which the test made per delivery.
    assert _timeless(tables) == _timeless(rebuilt)


def _timeless(tables: dict[str, Any]) -> dict[str, Any]:
    return {
        "follows": [r[:2] for r in tables["follows"]],
        "follow_counts": tables["follow_counts"],
        "feed_articles": [(r[0], r[1], r[2], r[4]) for r in tables["feed_articles"]],
        "erased_users": tables["erased_users"],
    }


# --- comments -------------------------------------------------------------------------

CommentStep = tuple[str, int, int]  # post / reply / delete, which article, which comment
COMMENT_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["post", "reply", "reply", "delete"]), st.integers(0, 1), st.integers(0, 30)
    ),
    min_size=1,
    max_size=40,
)
ARTICLES = [new_id_str() for _ in range(2)]
COMMENT_TABLES = {"comments": "id", "comment_counts": "article_id"}


@dataclass
class Tree:
    """The comment rules in miniature: live comments by id with (article, parent, root);
    ``ever`` holds every id posted, deleted or not, so replies to deleted comments and
    deletes of deleted ones are in the log as racing requests could put them there."""

    live: dict[str, tuple[str, str | None, str | None]] = field(default_factory=dict)
    ever: list[tuple[str, str, str | None]] = field(default_factory=list)  # id, article, root

    def post(self, article: str) -> CommentPosted:
        return self._posted(article, None, None)

    def reply(self, which: int) -> CommentPosted | None:
        if not self.ever:
            return None
        parent, article, root = self.ever[which % len(self.ever)]
        return self._posted(article, parent, root or parent)

    def delete(self, which: int) -> CommentDeleted | None:
        if not self.ever:
            return None
        target, article, _ = self.ever[which % len(self.ever)]
        gone = {target} if target in self.live else set()
        while grown := {c for c, (_, p, _) in self.live.items() if p in gone} - gone:
            gone |= grown
        for c in gone:
            del self.live[c]
        return CommentDeleted(article_id=article, comment_id=target, deleted_by=USERS[0])

    def _posted(self, article: str, parent: str | None, root: str | None) -> CommentPosted:
        comment_id = new_id_str()
        if parent is None or parent in self.live:
            self.live[comment_id] = (article, parent, root)
        self.ever.append((comment_id, article, root))
        return CommentPosted(
            article_id=article,
            comment_id=comment_id,
            author_id=USERS[1],
            article_author_id=USERS[0],
            parent_id=parent,
            root_id=root,
            content="text",
        )


def comment_log(steps: Sequence[CommentStep]) -> tuple[list[tuple[str, str, Event]], Tree]:
    tree = Tree()
    out: list[tuple[str, str, Event]] = []
    for op, article, which in steps:
        event = (
            tree.post(ARTICLES[article])
            if op == "post"
            else tree.reply(which)
            if op == "reply"
            else tree.delete(which)
        )
        if event is not None:
            out.append(("comments", event.article_id, event))
    return out, tree


@HYPOTHESIS
@given(steps=COMMENT_STEPS, live=SPLITS, replay=SPLITS)
@example(
    steps=[("post", 0, 0), ("reply", 0, 0), ("reply", 0, 1), ("delete", 0, 1), ("reply", 0, 2)],
    live=[1],
    replay=[9],
)
async def test_comment_trees_equal_the_models_and_replay_equals_live(
    rig: Rig, steps: list[CommentStep], live: list[int], replay: list[int]
) -> None:
    events, tree = comment_log(steps)
    await project(rig.comments[LIVE], as_read(events), live)
    await project(rig.comments[REPLAY], as_read(events), replay)

    tables = await dump_then_empty(rig.settings, f"comments_g{LIVE}", COMMENT_TABLES)
    rebuilt = await dump_then_empty(rig.settings, f"comments_g{REPLAY}", COMMENT_TABLES)

    rows = {str(r[0]): r for r in tables["comments"]}
    shape = {i: (str(r[1]), _str(r[4]), _str(r[5])) for i, r in rows.items()}
    assert shape == tree.live
    replies = Counter(root for _, _, root in tree.live.values() if root is not None)
    assert {i: r[8] for i, r in rows.items()} == {
        i: replies[i] for i, (_, parent, _) in tree.live.items() if parent is None
    } | {i: 0 for i, (_, parent, _) in tree.live.items() if parent is not None}
    per_article = Counter(a for a, _, _ in tree.live.values())
    counted = {str(r[0]): r[1] for r in tables["comment_counts"] if r[1]}
    assert counted == dict(per_article)
    assert all(r[1] >= 0 for r in tables["comment_counts"])
    timeless = [r[:7] + r[8:] for r in tables["comments"]]
    assert timeless == [r[:7] + r[8:] for r in rebuilt["comments"]]
    assert tables["comment_counts"] == rebuilt["comment_counts"]


def _str(value: object) -> str | None:
    return None if value is None else str(value)
