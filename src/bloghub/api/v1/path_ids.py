"""Ids named in a ``/v1`` path, taken in one spelling: the canonical one (lower case, with
hyphens) that the stores, the cache keys and the projectors' invalidations all use. An id
used as the client spelt it would name a cache entry no projector ever clears."""

from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

from pydantic import BeforeValidator
from starlette.requests import Request

from bloghub.errors import NotFound

# A UUID's 32 hex digits, in either case, with or without its four hyphens. ``UUID()``
# takes more (braces, a ``urn:uuid:`` prefix, hyphens anywhere): no link of this API is
# spelt so, and such a path names nothing.
_HEX_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", re.IGNORECASE)


def canonical_id(text: str) -> str | None:
    """``text`` as a canonical UUID, or None when it is no UUID in hex."""
    if _HEX_ID.fullmatch(text) is None:
        return None
    return str(UUID(text))


def path_id(request: Request, name: str, what: str) -> str:
    """The id in the path parameter ``name``, canonical; 404 ("no such ``what``") for a
    text that is no id, as for an id nothing has."""
    found = canonical_id(request.path_params[name])
    if found is None:
        raise NotFound(f"no such {what}")
    return found


def _spelt_as_in_paths(value: object) -> object:
    if isinstance(value, str) and _HEX_ID.fullmatch(value) is None:
        raise ValueError("must be an id: 32 hex digits, with or without its four hyphens")
    return value


# An id in a body or a query, taken in the spellings a path takes (``canonical_id``):
# pydantic's UUID alone also takes braces and a ``urn:uuid:`` prefix.
Id = Annotated[UUID, BeforeValidator(_spelt_as_in_paths)]
