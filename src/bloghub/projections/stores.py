"""What a projector may be built from: the stores and settings of one worker process.

Every projector class, whatever its store, is built the same way (``from_stores``), so
the worker, the replay tool and the tests build any of them by name (catalog.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from opensearchpy import AsyncOpenSearch
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.redis.cache import Cache
from bloghub.settings import Settings


@dataclass(frozen=True, slots=True)
class Stores:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    search: AsyncOpenSearch
    # Shared read caches the projector owns entries of; None while a generation is being
    # rebuilt beside the live one (it must not touch what readers see).
    cache: Cache | None
    # False while a generation is being rebuilt: every projector built from these stores
    # keeps its side effects off (``live``): no notifications, pushes, SMS, cache warming.
    live: bool = True
