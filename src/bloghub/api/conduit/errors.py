"""RealWorld's error shape, ``{"errors": {"<field>": ["…"]}}``, with its statuses: 401 for a
missing or bad token, 403, 404 and 409 naming the resource or field, 422 for any input the
API cannot take (malformed, of the wrong type, blank, too long, too large)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TypeVar

import orjson
import structlog
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from bloghub.api.http import (
    JSON,
    MAX_FIELD_ERRORS,
    Handler,
    container,
    content_coding,
    json_fault,
    media_type,
    not_utf8,
    session_after_body,
)
from bloghub.api.v1.schemas import PLAIN, VISIBLE
from bloghub.errors import (
    BloghubError,
    PayloadTooLarge,
    SchemaBehind,
    StoreRejected,
    Transient,
    Unavailable,
)
from bloghub.logs import logged_path, store_unreachable

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
Errors = dict[str, list[str]]
# Statuses RealWorld has, kept; every other input error is its 422.
_KEPT = {401, 403, 404, 409, 422, 429, 503}
_TAKEN = "has already been taken"


class ConduitError(Exception):
    def __init__(self, status: int, errors: Mapping[str, list[str]]) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = dict(errors)


# C0 and C1 controls: no name, tag or slug holds one, and the stores refuse NUL.
_CONTROLS = {*range(0x20), *range(0x7F, 0xA0)}


def plain(value: str) -> bool:
    return not any(ord(ch) in _CONTROLS for ch in value)


def query_value(request: Request, name: str) -> str | None:
    """A query parameter's value; 422 if it is given more than once (none takes a list)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ConduitError(422, {name: ["is given more than once"]})
    return values[0] if values else None


def query_text(request: Request, name: str) -> str | None:
    """A text query parameter; 422 if it holds control characters."""
    value = query_value(request, name)
    if value is not None and not plain(value):
        raise ConduitError(422, {name: ["is invalid"]})
    if value is not None and name in not_utf8(request):
        raise ConduitError(422, {name: ["is not UTF-8"]})
    return value


def path_text(request: Request, name: str, resource: str) -> str:
    """A path parameter naming a resource; one with control characters names none."""
    value: str = request.path_params[name]
    if not plain(value):
        raise not_found(resource)
    return value


def not_found(resource: str) -> ConduitError:
    return ConduitError(404, {resource: ["not found"]})


def forbidden(resource: str) -> ConduitError:
    return ConduitError(403, {resource: ["forbidden"]})


def blank(field: str) -> ConduitError:
    return ConduitError(422, {field: ["can't be blank"]})


def response(status: int, errors: Mapping[str, list[str]]) -> Response:
    return JSON({"errors": dict(errors)}, status_code=status)


def translated(request: Request, exc: BloghubError) -> ConduitError:
    """A core error in RealWorld's words."""
    status = exc.status if exc.status in _KEPT or exc.status >= 500 else 422
    if status == 401:
        token = "is missing" if not request.headers.get("authorization") else "is invalid"
        return ConduitError(401, {"token": [token]})
    if exc.fields:
        return ConduitError(status, {_public(f): [_said(str(m))] for f, m in exc.fields.items()})
    # A 5xx is the server's to answer for, never the body's (a client retries it as is).
    key = "server" if status >= 500 else _RESOURCE.get(status, "body")
    return ConduitError(status, {key: [exc.message]})


# A refusal that names no field is the request's as a whole: a lockout or another limit
# (as the rate limiter's 429), a resource not there or not the caller's.
_RESOURCE = {403: "resource", 404: "resource", 429: "request"}
# Core field names as RealWorld calls them.
_NAMES = {"nickname": "username", "about_me": "bio", "content": "body", "tags": "tagList"}


def _said(message: str) -> str:
    return _TAKEN if message == "already taken" else message


def _public(field: str) -> str:
    return _NAMES.get(field, field)


def conduit(handler: Handler, statuses: frozenset[int] = frozenset(_KEPT)) -> Handler:
    """``handler`` answering every failure in RealWorld's shape, with a status the spec
    gives the operation (``statuses``): any other refusal of the request is its 422 (a
    taken username on an update, say, where the spec has no 409). 429 and 503 are the
    service's, not the request's, and stay."""

    @functools.wraps(handler)
    async def answer(request: Request) -> Response:
        wait = 1  # seconds a 429 or 503 asks the client to wait; the error's own if it says
        told_to_wait = False  # an error that says when to come back (a 409 too) says so
        try:
            return await handler(request)
        except ConduitError as exc:
            failed = exc
        except SchemaBehind as exc:
            # The missing table or column is the operators' to know (logged).
            log.warning("conduit.schema_behind", path=logged_path(request.url.path), error=str(exc))
            failed = ConduitError(503, {"server": ["being upgraded; try again shortly"]})
            wait = 5
        except BloghubError as exc:
            if isinstance(exc, Unavailable):
                store_unreachable(request.url.path, exc)
            failed = translated(request, exc)
            told_to_wait = bool(getattr(exc, "retry_after_s", None))
            wait = getattr(exc, "retry_after_s", None) or wait
            if failed.status not in statuses | {429} and told_to_wait:
                # "Come back in a moment" (a retry whose first request still runs) where
                # the spec has no 409: the service's 503, not a 422 that blames the input.
                failed = ConduitError(503, failed.errors)
        except StoreRejected:
            # A check the input rules lack: still the request's fault, and said so here.
            log.warning("conduit.store_rejected_input", path=logged_path(request.url.path))
            failed = ConduitError(422, {"body": ["has a value that cannot be stored"]})
        except Transient:
            failed = ConduitError(503, {"server": ["a backing store is unwell; try again"]})
        if failed.status < 500 and failed.status not in statuses | {429}:
            failed = ConduitError(422, failed.errors)
        out = response(failed.status, failed.errors)
        if failed.status in (429, 503) or told_to_wait:
            out.headers["retry-after"] = str(wait)
        return out

    return answer


async def conduit_body(request: Request, model: type[M]) -> M:
    """The JSON body read into ``model``; 422 in RealWorld's words if it cannot be. Only a
    body said to be JSON is read: a cross-site page may have a browser send text/plain,
    a form or an untyped body without asking first, and would otherwise sign up accounts
    or spend the login failures of whoever visits it."""
    ctype = media_type(request)
    if ctype is None:
        raise ConduitError(422, {"body": ["must be sent with one Content-Type, not several"]})
    if ctype != "application/json":
        said = f"not as {ctype}" if ctype else "with Content-Type: application/json"
        raise ConduitError(422, {"body": [f"must be sent as JSON, {said}"]})
    coding = content_coding(request)
    if coding is not None:
        raise ConduitError(422, {"body": [f"must be sent uncompressed, not as {coding}"]})
    limit = container(request).settings.max_body_bytes
    too_large = {"body": [f"is over the limit of {limit} bytes"]}
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise ConduitError(422, {"body": ["was cut short"]}) from None
    except PayloadTooLarge:
        raise ConduitError(422, too_large) from None
    if len(raw) > limit:
        raise ConduitError(422, too_large)
    await session_after_body(request)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConduitError(422, {"body": [f"is not valid JSON: {json_fault(exc, raw)}"]}) from None
    if not isinstance(data, dict):
        raise ConduitError(422, {"body": ["must be a JSON object"]})
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ConduitError(422, field_errors(exc)) from None


def field_errors(exc: ValidationError) -> Errors:
    out: Errors = {}
    for err in exc.errors(include_url=False):
        name = next((str(p) for p in reversed(err["loc"]) if isinstance(p, str)), "body")
        if name not in out and len(out) == MAX_FIELD_ERRORS:
            break
        out.setdefault(name, [])
        message = _message(err)
        if message not in out[name]:
            out[name].append(message)
    return out


def shows_nothing(value: str) -> bool:
    """Spaces, line breaks or invisible characters alone (a zero-width space, say), and
    no control character, which is refused as what it is."""
    return not VISIBLE.matches(value) and PLAIN.matches(value)


# The type errors of a null where text or an object is required. A null list item is
# invalid, not blank; and a null list (tags) is left to say so.
_BLANK_WHEN_NULL = frozenset({"string_type", "model_type", "model_attributes_type", "dict_type"})


def _message(err: ErrorDetails) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "missing" or (isinstance(value, str) and shows_nothing(value)):
        return "can't be blank"
    if value is None and kind in _BLANK_WHEN_NULL and isinstance(err["loc"][-1], str):
        return "can't be blank"  # a required field sent as null (Rails: nil is blank)
    if kind == "string_too_short":
        return f"is too short (minimum is {ctx.get('min_length')} characters)"
    if kind == "string_too_long":
        return f"is too long (maximum is {ctx.get('max_length')} characters)"
    if kind == "too_long":  # a list
        return f"has too many entries (maximum is {ctx.get('max_length')})"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return "is invalid"
