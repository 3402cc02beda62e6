"""The two ASGI apps that ``bench/http.py`` serves with uvicorn, started the same way
(``uvicorn --factory bench.http_apps:NAME``), so the only difference is the app.

``bloghub``: the real app, built as an API worker of ``bloghub api`` builds it (settings and
logging from the environment, the heap settled once it is up). ``bare``: a plain Starlette
app answering the bodies bloghub gave for the same reads, pre-encoded (read from the JSON
file named by ``BENCH_BARE_BODIES``), and a POST that parses the same JSON body a draft
create gets and answers 201.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODIES_ENV = "BENCH_BARE_BODIES"


def bloghub() -> Starlette:
    from bloghub.cli import app_from_environment

    return app_from_environment()


def bare() -> Starlette:
    bodies = json.loads(Path(os.environ[BODIES_ENV]).read_text())
    detail = bodies["detail"].encode()
    profile = bodies["profile"].encode()
    ranking = bodies["ranking"].encode()
    created = b'{"article":{"id":"00000000-0000-0000-0000-000000000000","version":1}}'

    async def read_detail(request: Request) -> Response:
        return Response(detail, media_type="application/json")

    async def read_profile(request: Request) -> Response:
        return Response(profile, media_type="application/json")

    async def read_ranking(request: Request) -> Response:
        return Response(ranking, media_type="application/json")

    liked = b'{"article":{"id":"00000000-0000-0000-0000-000000000000","liked":true}}'

    async def like(request: Request) -> Response:
        return Response(liked, media_type="application/json")

    async def create(request: Request) -> Response:
        data = await request.json()
        if not isinstance(data, dict) or "title" not in data:
            return Response(b'{"error":{"code":"invalid"}}', status_code=422)
        return Response(created, status_code=201, media_type="application/json")

    return Starlette(
        routes=[
            Route("/detail", read_detail),
            Route("/profile", read_profile),
            Route("/ranking", read_ranking),
            Route("/drafts", create, methods=["POST"]),
            Route("/like", like, methods=["PUT"]),
        ]
    )
