"""OpenSearch: client construction and error translation, for whole requests and for the
items of a bulk answer; searches, refreshes and point-in-time views (what one process
knows of the indexes it searches is ``search_views``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import ConnectionTimeout, NotFoundError, RequestError, TransportError

from bloghub.errors import InvalidInput, StoreRejected, Transient, Unavailable

log = structlog.get_logger(__name__)

# A cluster that refuses writes for its own reasons: read-only or flood-stage disk blocks,
# a cluster without a master, shards not yet allocated.
_UNWELL_TYPES = frozenset(
    {
        "cluster_block_exception",
        "es_rejected_execution_exception",
        "opensearch_rejected_execution_exception",
        "circuit_breaking_exception",
        "unavailable_shards_exception",
        "no_shard_available_action_exception",
        "master_not_discovered_exception",
        "cluster_manager_not_discovered_exception",
        "process_cluster_event_timeout_exception",
    }
)


def make_opensearch(
    url: str, *, timeout_s: float = 10, retry_on_timeout: bool = True
) -> AsyncOpenSearch:
    """A client of the cluster. An API process's gives up on a cluster that takes a request
    and does not answer after one ``timeout_s``, rather than trying twice more and holding
    its caller three times as long for the same 503."""
    return AsyncOpenSearch(
        hosts=[url], timeout=timeout_s, max_retries=2, retry_on_timeout=retry_on_timeout
    )


def is_unwell(status: int, error_type: str | None) -> bool:
    """Whether an answer says the cluster is unwell (wait), not that the request is wrong."""
    return status == 429 or status >= 500 or error_type in _UNWELL_TYPES


def _error_type(info: Any) -> str | None:
    if isinstance(info, Mapping):
        error = info.get("error")
        if isinstance(error, Mapping):
            kind = error.get("type")
            return kind if isinstance(kind, str) else None
    return None


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except (OSConnectionError, ConnectionTimeout) as exc:
        raise Unavailable("the search index is not reachable") from exc
    except TransportError as exc:
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        if is_unwell(status, _error_type(exc.info)):
            raise Transient(f"search index unwell: {status} {exc.error}") from exc
        raise


async def search_index(
    client: AsyncOpenSearch, index: str, body: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """Run a search; None if the index does not exist yet (nothing was indexed). A query
    OpenSearch refuses as a whole is the request's fault (422); an unwell cluster is
    ``Transient``, an unreachable one ``Unavailable``."""
    async with translated(), _search_errors():
        try:
            found: Mapping[str, Any] = await client.search(index=index, body=body)
        except NotFoundError as exc:
            if _error_type(exc.info) == "index_not_found_exception":
                return None
            raise
        return found


async def current_docs(
    client: AsyncOpenSearch, index: str, ids: Sequence[str], fields: Sequence[str]
) -> dict[str, Mapping[str, Any]]:
    """``fields`` of the documents ``ids`` as the index holds them now (a real-time get:
    no refresh needed, nor a view's frozen state), by id; a missing one is left out."""
    async with translated():
        try:
            found = await client.mget(index=index, body={"ids": list(ids)}, _source=list(fields))
        except NotFoundError:
            return {}
    failed = [d for d in found["docs"] if "error" in d]
    if failed:  # a shard that could not answer for a document: not "no such document"
        raise Transient(f"search index unwell: {failed[0]['error']}")
    return {d["_id"]: d["_source"] for d in found["docs"] if d.get("found")}


async def search_view(
    client: AsyncOpenSearch, view: str, body: Mapping[str, Any], *, keep_alive: str
) -> Mapping[str, Any]:
    """Search the point-in-time view ``view`` (its index as it was when the view was
    opened), keeping it open ``keep_alive`` longer. ``ViewGone`` if it has expired, was
    closed, or its index is gone."""
    async with translated(), _search_errors():
        try:
            found: Mapping[str, Any] = await client.search(
                body={**body, "pit": {"id": view, "keep_alive": keep_alive}}
            )
        except NotFoundError as exc:
            raise ViewGone(view) from exc
        return found


@asynccontextmanager
async def _search_errors() -> AsyncIterator[None]:
    try:
        yield
    except RequestError as exc:
        raise InvalidInput("the search could not be run as asked") from exc
    except TransportError as exc:
        # A query of more words than the cluster takes clauses (each word a clause in
        # each field searched) fails as a 500, though trying again cannot help.
        if _caused_by(exc.info, _TOO_MANY_CLAUSES):
            raise InvalidInput("the search has too many words; use fewer") from exc
        raise


class ViewGone(Exception):
    """A point-in-time view that no longer exists (expired, closed, node restarted)."""


class TooManyViews(Transient):
    """The cluster holds as many point-in-time views as it allows
    (``search.max_open_pit_context``)."""


async def open_view(client: AsyncOpenSearch, index: str, *, keep_alive: str) -> str | None:
    """Open a point-in-time view of ``index``: what its searches find as of now, for
    ``keep_alive`` after each use. None if the index does not exist yet."""
    async with translated():
        try:
            made = await client.create_pit(index=index, params={"keep_alive": keep_alive})
        except NotFoundError as exc:
            if _error_type(exc.info) == "index_not_found_exception":
                return None
            raise
        except TransportError as exc:
            if exc.status_code == 429:  # search.max_open_pit_context reached, or busy
                raise TooManyViews(f"no view opened: {exc.error}") from exc
            raise
    return str(made["pit_id"])


async def close_view(client: AsyncOpenSearch, view: str) -> None:
    async with translated():
        await client.delete_pit(body={"pit_id": [view]})


async def refresh_index(client: AsyncOpenSearch, index: str) -> bool:
    """Make every write acknowledged so far searchable; False if the index does not exist."""
    async with translated():
        try:
            await client.indices.refresh(index=index)
        except NotFoundError as exc:
            if _error_type(exc.info) == "index_not_found_exception":
                return False
            raise
    return True


_TOO_MANY_CLAUSES = frozenset({"too_many_clauses", "too_many_nested_clauses"})


def _caused_by(info: Any, types: frozenset[str]) -> bool:
    """Whether an error answer names one of ``types`` as its cause, at any depth."""
    if isinstance(info, Mapping):
        if info.get("type") in types:
            return True
        return any(_caused_by(v, types) for v in info.values())
    if isinstance(info, list):
        return any(_caused_by(v, types) for v in info)
    return False


# 409: a newer version is already there; 404: deleting what never existed.
_HARMLESS = (404, 409)


def bulk_conflicts(result: Mapping[str, Any]) -> list[str]:
    """``check_bulk``, then the ids of the items a newer version refused (409)."""
    check_bulk(result)
    if not result.get("errors"):
        return []
    return [
        str(item.get("_id"))
        for entry in result["items"]
        for item in entry.values()
        if item.get("status") == 409
    ]


def check_bulk(result: Mapping[str, Any]) -> None:
    """Raise for the failed items of a bulk answer (its status is 200 even when items
    fail): ``Transient`` if any item says the cluster is unwell, since the whole request
    can be sent again (versions make that harmless); ``StoreRejected`` if the documents
    themselves are refused."""
    if not result.get("errors"):
        return
    failed = [
        item
        for entry in result["items"]
        for item in entry.values()
        if item.get("status", 200) >= 300 and item.get("status") not in _HARMLESS
    ]
    unwell = [i for i in failed if is_unwell(int(i.get("status", 0)), _error_type(i))]
    if unwell:
        raise Transient(f"search index unwell for {len(unwell)} documents: {unwell[0]}")
    if failed:
        raise StoreRejected(f"{len(failed)} document writes refused: {failed[0]}")
