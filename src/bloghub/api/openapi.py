"""The OpenAPI document, generated from the endpoints and their pydantic models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bloghub.api.http import Endpoint
from bloghub.api.v1.schemas import ErrorOut

_REASONS = {
    400: "Malformed request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Invalid fields",
    429: "Too many requests",
    503: "A backing service is unavailable",
}


def build_openapi(endpoints: Sequence[Endpoint], *, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorOut}
    for ep in endpoints:
        models.update(m for m in (ep.body, ep.response) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bloghub",
            "version": version,
            "description": "An event-sourced blog and community backend.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(ep: Endpoint) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    if ep.response is not None:
        ok["content"] = {ep.media_type: {"schema": _ref(ep.response)}}
    if ep.headers:
        ok["headers"] = {
            k: {"description": v, "schema": {"type": "string"}} for k, v in ep.headers.items()
        }
    responses: dict[str, Any] = {str(ep.status): ok}
    for status in ep.errors:
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": _ref(ErrorOut)}},
        }
    op: dict[str, Any] = {
        "summary": ep.summary,
        "tags": [ep.tag],
        "operationId": f"{ep.method.lower()}_{ep.path.strip('/').replace('/', '_')}",
        "responses": responses,
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", ep.path)
    ] + [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in ep.query.items()
    ]
    if parameters:
        op["parameters"] = parameters
    if ep.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(ep.body)}},
        }
    if ep.auth:
        op["security"] = [{"bearer": []}]
    return op
