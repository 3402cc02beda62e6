"""Like and collection counts stay exact while the interactions projector is killed with
SIGKILL mid-batch ten times under a steady like/unlike load, two instances sharing the
partitions: every count equals the size of its set as the log leaves it, and a replay of
the log into a fresh generation gives the same counts."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bloghub.events.articles import ArticlePublished
from bloghub.events.base import Event
from bloghub.events.interactions import (
    ArticleCollected,
    ArticleLiked,
    ArticleUncollected,
    ArticleUnliked,
)
from bloghub.events.log import EventLog
from bloghub.events.topics import DLQ, topic_for
from bloghub.ids import new_id_str
from bloghub.projections.interactions import InteractionsProjector
from bloghub.settings import Settings
from tests.conftest import isolated, pg, read_topic
from tests.support import append_events, applied, projector_process, replay_generation, wait_until

ARTICLES = 30
USERS = 60
CHUNK = 200
KILLS = 10
AHEAD = 3000


@dataclass
class Load:
    """Likes, unlikes, collects and uncollects at random, and the sets they leave."""

    rng: random.Random
    author: str = field(default_factory=new_id_str)
    articles: list[str] = field(default_factory=lambda: [new_id_str() for _ in range(ARTICLES)])
    users: list[str] = field(default_factory=lambda: [new_id_str() for _ in range(USERS)])
    likes: set[tuple[str, str]] = field(default_factory=set)
    entries: set[tuple[str, str]] = field(default_factory=set)
    sent: int = 0

    def published(self) -> list[Event]:
        return [
            ArticlePublished(
                article_id=a, author_id=self.author, version=2, title="t", content="", tags=[]
            )
            for a in self.articles
        ]

    def chunk(self) -> list[Event]:
        out: list[Event] = []
        for _ in range(CHUNK):
            article, user = self.rng.choice(self.articles), self.rng.randrange(USERS)
            ids = {"article_id": article, "author_id": self.author, "user_id": self.users[user]}
            box = self.users[user]  # each user's one collection shares the user's id
            roll = self.rng.random()
            if roll < 0.35:
                self.likes.add((article, self.users[user]))
                out.append(ArticleLiked(**ids))
            elif roll < 0.6:
                self.likes.discard((article, self.users[user]))
                out.append(ArticleUnliked(**ids))
            elif roll < 0.8:
                self.entries.add((box, article))
                out.append(ArticleCollected(**ids, collection_id=box))
            else:
                self.entries.discard((box, article))
                out.append(ArticleUncollected(**ids, collection_id=box))
        self.sent += len(out)
        return out

    def expected(self) -> dict[str, tuple[int, int]]:
        likes = Counter(a for a, _ in self.likes)
        entries = Counter(a for _, a in self.entries)
        return {a: (likes[a], entries[a]) for a in self.articles}


async def _counts(settings: Settings, schema: str) -> dict[str, tuple[int, int]]:
    async with pg(settings) as conn:
        rows = await conn.fetch(
            f'SELECT article_id::text AS a, like_cnt, collect_cnt FROM "{schema}".article_stats'
        )
        return {r["a"]: (r["like_cnt"], r["collect_cnt"]) for r in rows}


async def _stream(settings: Settings, load: Load, log: EventLog, stop: asyncio.Event) -> None:
    """A steady load until ``stop``, kept about ``AHEAD`` events in front of the projectors:
    every kill then finds them inside a batch, with the next one fetched."""
    while not stop.is_set():
        if ARTICLES + load.sent - await applied(settings, "interactions") >= AHEAD:
            await asyncio.sleep(0.02)
            continue
        await append_events(log, load.chunk())


async def test_counts_exact_through_ten_kills_under_load(run_id: str, tmp_path: Path) -> None:
    async with isolated(run_id, "ixkill", topic_partitions=6) as settings:
        load = Load(random.Random(run_id))
        log = EventLog.from_settings(settings, timeout_s=10)
        await log.start()
        await append_events(log, load.published())

        started: list[subprocess.Popen[bytes]] = []

        def start() -> subprocess.Popen[bytes]:
            # Small batches: a process spends its time inside a batch, so a kill lands there.
            proc = projector_process(
                settings, "interactions", log_file=tmp_path / "p.log", batch=150
            )
            started.append(proc)
            return proc

        stop = asyncio.Event()
        streaming = asyncio.create_task(_stream(settings, load, log, stop))
        running = [start(), start()]
        try:
            for kill in range(KILLS):
                before = await applied(settings, "interactions")

                async def moved(before: int = before) -> bool:
                    return await applied(settings, "interactions") > before + 2 * CHUNK

                await wait_until(moved, timeout_s=90)
                victim = running.pop(kill % 2)
                victim.send_signal(signal.SIGKILL)
                await asyncio.to_thread(victim.wait, 10)
                running.insert(kill % 2, start())
            stop.set()
            await streaming
            total = ARTICLES + load.sent

            async def caught_up() -> bool:
                return await applied(settings, "interactions") >= total

            await wait_until(caught_up, timeout_s=120)
        finally:
            stop.set()
            await asyncio.gather(streaming, return_exceptions=True)
            await log.close()
            for proc in started:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    await asyncio.to_thread(proc.wait, 30)

        assert await applied(settings, "interactions") == total
        assert not await read_topic(settings, topic_for(settings.prefix, DLQ))
        live = await _counts(settings, "interactions_g1")
        assert live == load.expected()

        await replay_generation(settings, InteractionsProjector, 2, until=total)
        assert await _counts(settings, "interactions_g2") == live
