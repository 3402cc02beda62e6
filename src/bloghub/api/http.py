"""Request/response helpers shared by every route: JSON bodies, the error shape, endpoints."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from bloghub.bootstrap import Container
from bloghub.errors import (
    BloghubError,
    InvalidInput,
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


CONTAINER = "bloghub.container"


def container(request: Request) -> Container:
    """The app's container. A handler asks for it several times, and ``app.state`` is a
    lookup through two Python-level calls: the first ask keeps it in the request's scope."""
    scope = request.scope
    c: Container | None = scope.get(CONTAINER)
    if c is None:
        c = scope[CONTAINER] = request.app.state.container
    return c


def realworld_path(path: str) -> bool:
    """Whether ``path`` is RealWorld's (``/api``), whose errors have RealWorld's shape,
    ``{"errors": {"<field>": ["…"]}}``, also when a middleware or the router answers."""
    return path == "/api" or path.startswith("/api/")


def shaped_error(path: str, code: str, message: str, field: str) -> dict[str, Any]:
    """An error body in the shape of the API ``path`` belongs to: ``code`` and ``message``
    for ``/v1`` and the rest, ``field`` and ``message`` for RealWorld's."""
    if realworld_path(path):
        return {"errors": {field: [message]}}
    return {"error": {"code": code, "message": message}}


def error_body(exc: BloghubError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.fields:
        body["fields"] = exc.fields
    return {"error": body}


async def parse_body(request: Request, model: type[M]) -> M:
    """Read a JSON body into ``model``: 415 unless JSON, 413 past the size limit, 400 if not
    JSON, 422 with per-field messages if it does not fit the model."""
    ctype = media_type(request)
    if ctype is None:
        raise UnsupportedMediaType("send one Content-Type: application/json, not several")
    if ctype != "application/json":
        if not ctype and not _has_body(request):
            fields = ", ".join(list(model.model_fields)[:8])
            raise UnsupportedMediaType(
                f"this request takes a JSON body (Content-Type: application/json) of {fields}"
            )
        raise UnsupportedMediaType("send the body as application/json")
    coding = content_coding(request)
    if coding is not None:
        raise UnsupportedMediaType(f"send the body uncompressed (not Content-Encoding {coding})")
    try:
        raw = await request.body()
    except ClientDisconnect as exc:
        raise MalformedRequest("the request body was cut short") from exc
    limit = container(request).settings.max_body_bytes
    if len(raw) > limit:
        raise PayloadTooLarge.over(limit)
    await session_after_body(request)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"the body is not valid JSON: {json_fault(exc, raw)}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    try:
        # JSON mode: strict about types, yet dates and the like may arrive as ISO strings.
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput("some fields are not valid", fields=field_errors(exc)) from exc


async def session_after_body(request: Request) -> None:
    """The caller's session checked again now that the body is in, if it was checked
    before it was (``api/auth.py: session_is_live``)."""
    again = getattr(request.state, "session_after_body", None)
    if again is not None:
        request.state.session_after_body = None
        await again()


def takes_no_body(ep: Endpoint) -> bool:
    """A ``/v1`` write whose request has no body: one sent is refused (``no_body``), as
    every write that takes one refuses fields it does not know, rather than ignored (a
    ``version`` sent to a publish is no stale check, an ``author_id`` no one else's)."""
    writes = ep.method in ("POST", "PUT", "PATCH", "DELETE")
    return writes and ep.body is None and not ep.body_optional and ep.path.startswith("/v1/")


def sends_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if (name == b"content-length" and value.strip() != b"0") or name == b"transfer-encoding":
            return True
    return False


# Longest body read for one that should be none: an empty JSON object (as clients that
# always send JSON do), however spaced.
_NO_BODY_BYTES = 1024


async def no_body(receive: Receive) -> Receive:
    """Read the body of a request that takes none: nothing, or an empty JSON object, is
    let through (``receive`` for the handler, the body replayed); anything else is 422.
    A body too long to be nothing is read on, unkept, so one over the body limit is
    refused 413 by it (``BodyLimit``) however it is sent, as on every other route."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise MalformedRequest("the request body was cut short")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size <= _NO_BODY_BYTES:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    if size > _NO_BODY_BYTES or not _nothing(body):
        raise InvalidInput("this request takes no body: send none, or an empty JSON object")
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _nothing(body: bytes) -> bool:
    """Whether ``body`` says nothing: empty, or an empty JSON object, however spaced."""
    if not body.strip():
        return True
    try:
        return bool(orjson.loads(body) == {})
    except orjson.JSONDecodeError:
        return False


def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )


def media_type(request: Request) -> str | None:
    """The body's media type as sent (lower case, no parameters; "" if none), or ``None``
    if ``Content-Type`` came more than once: which one the body is, is anyone's guess."""
    types = request.headers.getlist("content-type")
    if len(types) > 1:
        return None
    return types[0].split(";")[0].strip().lower() if types else ""


def content_coding(request: Request) -> str | None:
    """The body's content coding when there is one the server would have to undo
    (``gzip``, say): bodies are read as sent, and a compressed one is no JSON. Every
    ``Content-Encoding`` header and each coding listed in one counts."""
    for value in request.headers.getlist("content-encoding"):
        for coding in value.split(","):
            coding = coding.strip().lower()
            if coding not in ("", "identity"):
                return coding[:32]
    return None


def json_fault(exc: orjson.JSONDecodeError, raw: bytes) -> str:
    """Where and why a body is no JSON: in the parser's words where they fit what was sent
    ("unexpected end of data: line 1 column 6 (char 5)"), in the API's where they would
    mislead (the parser calls any bytes that are not UTF-8 "surrogates", and a number
    past what a double holds "infinity")."""
    try:
        raw.decode()
    except UnicodeDecodeError as bad:
        return f"it is not UTF-8 (byte {bad.start}); send JSON encoded as UTF-8"
    text = str(exc)
    if text.startswith("number is infinity"):
        return f"a number is too large (at char {exc.pos})"
    return text[:200]


def parse_query(request: Request, model: type[M]) -> M:
    """The query string read into ``model`` (the same model documents the parameters):
    400 if it is not UTF-8, 422 with per-parameter messages if it does not fit."""
    garbled = not_utf8(request)
    if garbled:
        raise MalformedRequest(
            "the query string is not UTF-8: percent-encode its UTF-8 bytes",
            fields=dict.fromkeys(garbled, "is not UTF-8"),
        )
    repeated = repeated_parameters(request, model)
    if repeated:
        raise InvalidInput(
            "give each parameter once",
            fields=dict.fromkeys(repeated, "is given more than once"),
        )
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise InvalidInput("some parameters are not valid", fields=field_errors(exc)) from exc


def repeated_parameters(request: Request, model: type[BaseModel]) -> list[str]:
    """The parameters of ``model`` given more than once (``?limit=5&limit=50``): none
    takes a list, and taking one of the values would answer what the client may not have
    meant. Others are ignored, however often they come (a cache buster, a tracker's)."""
    params = request.query_params
    if len(params.multi_items()) == len(params):
        return []
    names = {f.alias or name for name, f in model.model_fields.items()}
    return sorted(name for name in params if name in names and len(params.getlist(name)) > 1)


def not_utf8(request: Request) -> list[str]:
    """The query parameters whose percent-encoded bytes are not UTF-8. Starlette reads
    them as U+FFFD, which would search for (or filter by) a character never sent; only a
    query holding one is looked at again."""
    if not any("\ufffd" in k or "\ufffd" in v for k, v in request.query_params.multi_items()):
        return []
    out: list[str] = []
    for pair in request.scope.get("query_string", b"").decode("latin-1").split("&"):
        name, _, value = pair.replace("+", " ").partition("=")
        try:
            unquote(name, errors="strict")
            unquote(value, errors="strict")
        except UnicodeDecodeError:
            out.append(unquote(name)[:64])
    return out


# The fields a 422 names at most: a body of many thousand unknown keys gets an answer the
# size of a few, not several times its own.
MAX_FIELD_ERRORS = 20


def field_errors(exc: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for err in exc.errors(include_url=False, include_input=False):
        name = ".".join(str(p) for p in err["loc"]) or "body"
        if name not in out and len(out) == MAX_FIELD_ERRORS:
            break
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        out.setdefault(name, message)
    return out


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A route plus what the OpenAPI document says of it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    also: tuple[int, ...] = ()  # other success statuses, with the same body
    auth: bool = False
    errors: tuple[int, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)  # name -> description
    query_required: tuple[str, ...] = ()  # which of ``query`` must be given
    params: type[BaseModel] | None = None  # the query string's model, when it has one
    # Request headers the operation reads (name -> description), and whether one of them
    # may stand in for the body (``body_optional``).
    request_headers: Mapping[str, str] = field(default_factory=dict)
    body_optional: bool = False
    media_type: str = "application/json"
