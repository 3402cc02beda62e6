"""What one API process knows of the indexes it searches (``Views``): the log positions
its refreshes made searchable, and the point-in-time view its first pages share. Built
once per process in the composition root."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from opensearchpy import AsyncOpenSearch

from bloghub.adapters.opensearch import (
    TooManyViews,
    ViewGone,
    close_view,
    open_view,
    refresh_index,
    search_index,
    search_view,
)
from bloghub.errors import Transient, Unavailable
from bloghub.events.position import Position

log = structlog.get_logger(__name__)

# How long one shared view serves first pages: about the index's own refresh interval (1 s),
# so a reader who names no position finds what they would have found without views.
VIEW_FRESH_S = 1.0
# How long a view stays open after each page read through it: the time a reader has to ask
# for the next page.
VIEW_KEEP_ALIVE_S = 120
VIEW_KEEP_ALIVE = f"{VIEW_KEEP_ALIVE_S}s"
# After the cluster refused a view, first pages search the index itself for this long.
NO_VIEWS_S = 5.0


@dataclass(eq=False)
class View:
    """A point-in-time view of an index, shared by the first pages of one process's
    searches while it is fresh."""

    id: str
    opened_at: float
    covers: dict[tuple[str, int], int]  # log positions searchable in it
    after_refresh: int  # the number of the newest refresh finished before it was opened
    users: int = 0  # first pages reading it now
    named: bool = False  # a cursor names it: left open until it expires
    retired: bool = False  # a fresher view serves first pages now
    closed: bool = False


@dataclass(eq=False)
class _IndexState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Per (topic, partition), the highest offset a refresh of this process made searchable:
    # the refresh began after the projector had passed it.
    covered: dict[tuple[str, int], int] = field(default_factory=dict)
    started: int = 0  # refreshes begun
    finished: int = 0  # the number of the newest refresh that finished
    view: View | None = None
    no_views_until: float = 0.0
    failures: int = 0


class Views:
    """What one API process knows of each index it searches.

    A refresh costs the whole index (every shard writes a new segment), so a reader who
    waited for a position has the index refreshed only if no refresh of this process begun
    since the projector passed that position has made it searchable: a position once
    refreshed is never refreshed for again, and readers who arrive while a refresh runs
    share the next one. First pages read a point-in-time view (opened after the refresh
    they need, at most ``VIEW_FRESH_S`` old, shared), and a cursor names it, so the later
    pages of a search read the index as the first did: no article skipped or repeated when
    others publish meanwhile. A view no cursor named is closed once a fresher one serves;
    one a cursor names expires ``VIEW_KEEP_ALIVE`` after its last page, so a process holds
    at most about ``VIEW_KEEP_ALIVE / VIEW_FRESH_S`` (120) views per index, whatever the
    number of searches. Should the cluster refuse more (``search.max_open_pit_context``,
    300 per node by default), first pages search the index itself for ``NO_VIEWS_S``, and
    their cursors page it with only the recency origin pinned."""

    def __init__(
        self,
        client: AsyncOpenSearch,
        *,
        fresh_s: float = VIEW_FRESH_S,
        keep_alive: str = VIEW_KEEP_ALIVE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._fresh_s = fresh_s
        self._keep_alive = keep_alive
        self._clock = clock
        self._indexes: dict[str, _IndexState] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def refreshed(self, index: str, wanted: Position) -> bool:
        """Make ``wanted`` (positions the index's projector has passed) searchable in
        ``index``; False if the index does not exist."""
        state = self._state(index)
        if _covers(state.covered, wanted):
            return True
        ticket = state.started
        async with self._turn(state):
            return await self._cover(index, state, wanted, ticket)

    async def first_page(
        self,
        index: str,
        body: Mapping[str, Any],
        wanted: Position,
        *,
        paged: Callable[[Mapping[str, Any]], bool],
    ) -> tuple[Mapping[str, Any] | None, str | None]:
        """A first page, read through a fresh view in which ``wanted`` is searchable, and
        the view its later pages read if ``paged`` says there are some (None: the index was
        searched itself, the cluster holding no more views). None found: no index yet."""
        for _ in range(2):
            try:
                view = await self._current(index, wanted)
            except TooManyViews as exc:
                log.warning("search.no_view", index=index, error=str(exc))
                if not await self.refreshed(index, wanted):
                    return None, None
                return await search_index(self._client, index, body), None
            if view is None:
                return None, None
            view.users += 1
            named = False
            try:
                found = await search_view(self._client, view.id, body, keep_alive=self._keep_alive)
                named = paged(found)
            except ViewGone:  # the node restarted, say: open another
                self._drop(index, view)
                continue
            finally:
                view.users -= 1
                view.named = view.named or named
                self._settle(view)
            return found, str(found.get("pit_id") or view.id) if named else None
        raise Transient(f"the views of {index} vanish as they are opened")

    async def later_page(self, view: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """A later page, read through the view its first page named; ``ViewGone`` if the
        view has expired."""
        return await search_view(self._client, view, body, keep_alive=self._keep_alive)

    def _state(self, index: str) -> _IndexState:
        state = self._indexes.get(index)
        if state is None:
            state = self._indexes[index] = _IndexState()
        return state

    async def _cover(self, index: str, state: _IndexState, wanted: Position, ticket: int) -> bool:
        """Under the index's lock: a refresh begun after the caller arrived (``ticket``:
        refreshes begun then), so after the projector had passed ``wanted``, has finished."""
        if _covers(state.covered, wanted):
            return True
        if state.finished <= ticket:
            state.started += 1
            number = state.started
            if not await refresh_index(self._client, index):
                return False
            state.finished = number
        for topic, partition, offset in wanted:
            key = (topic, partition)
            state.covered[key] = max(offset, state.covered.get(key, -1))
        return True

    async def _current(self, index: str, wanted: Position) -> View | None:
        state = self._state(index)
        if state.view is not None and self._serves(state.view, wanted, None):
            return state.view
        ticket = state.started
        # Readers who find the view old wait for one of them to open the next.
        async with self._turn(state):
            if state.view is not None and self._serves(state.view, wanted, ticket):
                return state.view
            if self._clock() < state.no_views_until:
                raise TooManyViews("the cluster refused a view a moment ago")
            if not await self._cover(index, state, wanted, ticket):
                return None
            try:
                opened = await open_view(self._client, index, keep_alive=self._keep_alive)
            except TooManyViews:
                state.no_views_until = self._clock() + NO_VIEWS_S
                raise
            if opened is None:
                return None
            view = View(opened, self._clock(), dict(state.covered), state.finished)
            old, state.view = state.view, view
            if old is not None:
                old.retired = True
                self._settle(old)
            return view

    @asynccontextmanager
    async def _turn(self, state: _IndexState) -> AsyncIterator[None]:
        """The index's lock: one caller at a time refreshes or opens a view. Callers who
        waited while the one before them failed fail too rather than try in turn: behind a
        cluster that hangs, each would wait for every try before its own."""
        failures = state.failures
        async with state.lock:
            if state.failures > failures:
                raise Transient("the search index failed the request before this one")
            try:
                yield
            except TooManyViews:
                raise
            except (Transient, Unavailable):
                state.failures += 1
                raise

    def _serves(self, view: View, wanted: Position, ticket: int | None) -> bool:
        if self._clock() - view.opened_at >= self._fresh_s:
            return False
        refreshed_since = ticket is not None and view.after_refresh > ticket
        return refreshed_since or _covers(view.covers, wanted)

    def _drop(self, index: str, view: View) -> None:
        state = self._state(index)
        if state.view is view:
            state.view = None
        view.retired = view.closed = True

    def _settle(self, view: View) -> None:
        """Close a view nothing will read again (best effort: it expires anyway)."""
        if not view.retired or view.users or view.named or view.closed:
            return
        view.closed = True
        task = asyncio.create_task(self._close(view.id))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, view: str) -> None:
        # Best effort, whatever fails (the client may be closing): the view expires anyway.
        try:
            await close_view(self._client, view)
        except Exception as exc:
            log.info("search.view_not_closed", error=repr(exc))


def _covers(covered: Mapping[tuple[str, int], int], wanted: Position) -> bool:
    return all(covered.get((topic, p), -1) >= offset for topic, p, offset in wanted)
