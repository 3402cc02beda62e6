"""OpenSearch: client construction and error translation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import ConnectionTimeout, TransportError

from bloghub.errors import Transient, Unavailable


def make_opensearch(url: str) -> AsyncOpenSearch:
    return AsyncOpenSearch(hosts=[url], timeout=10, max_retries=2, retry_on_timeout=True)


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except (OSConnectionError, ConnectionTimeout) as exc:
        raise Unavailable("the search index is not reachable") from exc
    except TransportError as exc:
        if exc.status_code in (429, 502, 503, 504):
            raise Transient(f"search index busy: {exc.status_code}") from exc
        raise
