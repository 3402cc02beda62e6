"""The OpenAPI document, generated from the endpoints and their pydantic models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bloghub.api.http import Endpoint, takes_no_body
from bloghub.api.idempotency import RUNNING_WAIT_S
from bloghub.api.v1.schemas import ErrorOut

_REASONS = {
    400: "Malformed request (a body or query that cannot be read, or, where the operation "
    "reads it, a Bloghub-After this service did not issue)",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    415: "Unsupported media type (not `application/json`, compressed, or `Content-Type` sent "
    "more than once)",
    422: "Invalid fields (or parameters; one given more than once is refused)",
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
            "description": _ABOUT,
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


_ABOUT = (
    "An event-sourced blog and community backend.\n\n"
    "Read your writes: a write answers a `Bloghub-Position` header; send it back as "
    "`Bloghub-After` on a later request, and that request sees the write (a signed-in "
    "caller's own writes are waited for without it). A `Bloghub-After` this service did "
    "not issue is 400 where it is read: every read, and every write that decides on the "
    "read models (sign-up, refresh and the SMS operations read none, and not the header; "
    "a password login reads it once the password is right). A read that could not wait "
    "long enough (`READ_WAIT_S` in all) "
    "answers with what it has and `Bloghub-Stale: true`."
)
_IDEMPOTENT = (
    "Send `Idempotency-Key` (1-128 of `A-Za-z0-9._:-`, once: two are 422) to make a retry "
    "safe: a retry with "
    "the same key gets the first answer (with `Idempotent-Replay: true`) and writes "
    "nothing new; the same key with another body (compared as JSON, not as bytes) is 422, "
    "a retry sent while the first still runs waits for its answer "
    f"(up to {RUNNING_WAIT_S:g} s, then 409)."
)
_POSITION = (
    "Where the write is in the log, on an answer that wrote: send it back as Bloghub-After "
    "to read it"
)
_STALE = "true when the read models had not reached what the request waits for in time"
# An idempotent endpoint's key, typed so that a generated client offers it. Bloghub-After
# is left to the description: it is a signed token that only a write's answer gives, and
# a typed parameter would have generated clients (and tests) make values up.
_KEY_PARAM = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: a retry with the same key gets the first answer "
    "(sent once: two are 422)",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
}


# Statuses an endpoint can give by what it is, whatever its handler does: a body is parsed
# by ``parse_body`` (400, 413, 415, 422), a token is checked (401), ``/v1`` sits behind the
# rate limit (429) and reads or writes the stores (503).
_BODY_ERRORS = (400, 413, 415, 422)
_LIMITED = ("/v1/", "/api/")


def statuses(ep: Endpoint) -> list[int]:
    found = set(ep.errors)
    if ep.body is not None or ep.params is not None or takes_no_body(ep):
        found.update(_BODY_ERRORS if ep.body is not None else (422,))
    if ep.auth:
        found.add(401)
    if ep.path.startswith(_LIMITED):
        found.update((429, 503))
    if ep.path.startswith("/v1/"):
        found.add(400)  # a Bloghub-After it did not issue
    return sorted(found)


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(ep: Endpoint) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    if ep.response is not None:
        ok["content"] = {ep.media_type: {"schema": _ref(ep.response)}}
    # ``Idempotency-Key`` is a request header: described on the operation, its echo
    # (``Idempotent-Replay``) is the answer's.
    idempotent = "Idempotency-Key" in ep.headers
    said = {k: v for k, v in ep.headers.items() if k != "Idempotency-Key"}
    if idempotent:
        said["Idempotent-Replay"] = "true on an answer replayed for a retried key"
    if ep.path.startswith("/v1/"):
        # A read waits for positions (named, or the caller's own writes); a write, a
        # sign-up or a login tells where it is.
        if ep.method == "GET":
            said.setdefault("Bloghub-Stale", _STALE)
        else:
            said.setdefault("Bloghub-Position", _POSITION)
    if said:
        ok["headers"] = {
            k: {"description": v, "schema": {"type": "string"}} for k, v in said.items()
        }
    responses: dict[str, Any] = {str(status): ok for status in (ep.status, *ep.also)}
    for status in statuses(ep):
        responses[str(status)] = _error(ep, status)
    op: dict[str, Any] = {
        **({"description": _IDEMPOTENT} if idempotent else {}),
        "summary": ep.summary,
        "tags": [ep.tag],
        "operationId": f"{ep.method.lower()}_{ep.path.strip('/').replace('/', '_')}",
        "responses": responses,
    }
    parameters = (
        [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", ep.path)
        ]
        + _query(ep)
        + [
            {"name": name, "in": "header", "required": False, "description": text}
            | {"schema": {"type": "string"}}
            for name, text in ep.request_headers.items()
        ]
        + ([_KEY_PARAM] if idempotent else [])
    )
    if parameters:
        op["parameters"] = parameters
    if ep.body is not None:
        op["requestBody"] = {
            "required": not ep.body_optional,
            "content": {"application/json": {"schema": _ref(ep.body)}},
        }
    if ep.auth:
        op["security"] = [{"bearer": []}]
    return op


def _error(ep: Endpoint, status: int) -> dict[str, Any]:
    out: dict[str, Any] = {"description": _REASONS.get(status, "Error")}
    if ep.media_type == "text/html":
        # A page answers with a page (the dashboard's 401 is its login form).
        out["content"] = {"text/html": {"schema": {"type": "string"}}}
    else:
        out["content"] = {"application/json": {"schema": _ref(ErrorOut)}}
    if status in (429, 503):
        out["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}
        }
    return out


def _query(ep: Endpoint) -> list[dict[str, Any]]:
    """Query parameters: from the model that validates them, or described as free text."""
    if ep.params is None:
        return [
            {
                "name": name,
                "in": "query",
                "required": name in ep.query_required,
                "description": text,
                "schema": {"type": "string"},
            }
            for name, text in ep.query.items()
        ]
    schema = ep.params.model_json_schema()
    out = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        # An optional parameter is absent, never null, in a query string: what it means
        # then is its default, unless that is "none given".
        if prop.get("default", 0) is None:
            del prop["default"]
        options = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
        if options:
            prop = {**options[0], **prop}
        param = {"name": name, "in": "query", "required": name in schema.get("required", [])}
        if "description" in prop:
            param["description"] = prop.pop("description")
        out.append({**param, "schema": prop})
    return out
