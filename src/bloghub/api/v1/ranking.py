"""The hot ranking over HTTP: the copy this process holds (ranking/served.py), never a
computation or a store read on the request path."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.auth import wait_as_reader
from bloghub.api.http import Endpoint, container, parse_query
from bloghub.api.v1.article_schemas import AuthorOut
from bloghub.api.v1.schemas import DIGITS
from bloghub.errors import Unavailable
from bloghub.ranking.served import STALE_HEADER, VERSION_HEADER

DEFAULT_LIMIT = 20


class RankingQuery(BaseModel):
    limit: Annotated[int, Field(ge=1, le=100, description="entries, 1-100"), DIGITS] = DEFAULT_LIMIT


class RankedArticle(BaseModel):
    id: str
    title: str
    author: AuthorOut
    tags: list[str]
    published_at: datetime  # the first publish's event time, which the score counts from
    # The counts the score was computed from (an article's detail shows newer ones).
    read_cnt: int
    like_cnt: int
    collect_cnt: int
    comment_cnt: int  # comments under it, replies included, as of the computation too
    score: float


class RankingOut(BaseModel):
    articles: list[RankedArticle]
    version: int  # 0 until the first ranking is computed
    computed_at: datetime | None


async def hot(request: Request) -> Response:
    # The common request names no limit: skip the model for it.
    limit = DEFAULT_LIMIT
    if request.scope["query_string"]:
        limit = parse_query(request, RankingQuery).limit
    # The ranking is a snapshot no write waits on, but what a request sends is checked as
    # on every other read: a forged position is 400, a bad token 401 (the fast path
    # leaves such requests to this handler, so the common read pays nothing for it).
    await wait_as_reader(request, (), account=False)
    ranking = container(request).ranking
    snapshot = ranking.snapshot or await ranking.current()
    if snapshot is None:
        raise Unavailable("the ranking is not reachable yet; try again in a moment")
    return snapshot.answer(limit, ranking.stale).response()


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/ranking/hot",
        hot,
        "The hottest published articles of the last days, best first",
        "ranking",
        response=RankingOut,
        errors=(400, 401),
        params=RankingQuery,
        headers={
            VERSION_HEADER: "The ranking's version (grows with each computation)",
            STALE_HEADER: "true when Redis was out of reach: this is the last copy held",
        },
    ),
]
