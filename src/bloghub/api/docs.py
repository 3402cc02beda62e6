"""``/openapi.json`` and the ``/docs`` page: Swagger UI on that document, served by bloghub
itself (no outside scripts)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bloghub.api.assets import SWAGGER_UI, catalog, serve
from bloghub.api.http import JSON, Endpoint, container
from bloghub.api.openapi import build_openapi
from bloghub.api.v1.sms import PHONE_PATTERN, served_phone_pattern


def _version() -> str:
    try:
        return version("bloghub")
    except PackageNotFoundError:
        return "0"


async def openapi_json(request: Request) -> Response:
    endpoints: list[Endpoint] = request.app.state.endpoints
    document = build_openapi(endpoints, version=_version())
    served = served_phone_pattern(container(request).settings.sms_country_codes)
    return JSON(_with_pattern(document, PHONE_PATTERN, served))


def _with_pattern(node: Any, old: str, new: str) -> Any:
    """``node`` with every ``pattern`` equal to ``old`` replaced by ``new``: what a setting
    narrows (the countries codes go to) is stated as this deployment serves it."""
    if isinstance(node, dict):
        return {
            k: new if k == "pattern" and v == old else _with_pattern(v, old, new)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_with_pattern(v, old, new) for v in node]
    return node


# Swagger UI runs under this policy as it is: no inline script, no eval, nothing from
# another origin (the document, the libraries and "try it out" requests are all ours). It
# styles elements through the DOM, which ``style-src 'self'`` allows, so inline styles need
# no exception either (the browser test records every violation and finds none).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_ASSETS = catalog(("docs.js", "docs.css"), (SWAGGER_UI,))


async def docs_page(request: Request) -> Response:
    html = files("bloghub.api").joinpath("static/docs.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers={"content-security-policy": CSP})


async def docs_asset(request: Request) -> Response:
    return serve(request, _ASSETS.get(request.path_params["name"]))


ENDPOINTS = [
    Endpoint("GET", "/openapi.json", openapi_json, "This API's OpenAPI document", "meta"),
    Endpoint(
        "GET", "/docs", docs_page, "Readable API documentation", "meta", media_type="text/html"
    ),
    Endpoint(
        "GET",
        "/docs/static/{name}",
        docs_asset,
        "Scripts and styles of the documentation page (Swagger UI)",
        "meta",
        media_type="text/plain",
        errors=(404,),
    ),
]
