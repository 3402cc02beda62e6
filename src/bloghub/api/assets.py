"""Static files of the pages bloghub serves itself: its own scripts and styles, and the
browser libraries vendored from npm (pinned below; ``scripts/vendor-assets`` fetches them
and checks them against the pins). Nothing is loaded from another origin at run time."""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.http import JSON


@dataclass(frozen=True, slots=True)
class Vendored:
    """An npm package whose files are copied, unchanged, into ``static/vendor/<folder>``."""

    package: str
    version: str
    integrity: str  # the registry's checksum of the package tarball
    licence: str
    folder: str
    files: tuple[str, ...]  # paths inside the package; the first ones are what pages load


SWAGGER_UI = Vendored(
    package="swagger-ui-dist",
    version="5.35.0",
    integrity="sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
    licence="Apache-2.0",
    folder="swagger-ui",
    files=(
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "LICENSE",
        "NOTICE",
        "swagger-ui-bundle.js.LICENSE.txt",
    ),
)
UPLOT = Vendored(
    package="uplot",
    version="1.6.32",
    integrity="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
    licence="MIT",
    folder="uplot",
    files=("dist/uPlot.iife.min.js", "dist/uPlot.min.css", "LICENSE"),
)
VENDORED = (SWAGGER_UI, UPLOT)

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str
    gzip_etag: str  # each coding is its own representation, with its own tag (RFC 9110 8.8.3)
    media_type: str


def vendored_path(lib: Vendored, name: str) -> str:
    """Where a vendored file lies under ``static/``: flat, by its base name."""
    return f"vendor/{lib.folder}/{name.rsplit('/', 1)[-1]}"


@cache
def load(path: str) -> Asset:
    """A file under ``static/``, read once: package data does not change while we run."""
    body = files("bloghub.api").joinpath(f"static/{path}").read_bytes()
    suffix = path[path.rfind(".") :]
    digest = hashlib.sha256(body).hexdigest()[:32]
    return Asset(
        body=body,
        gzipped=gzip.compress(body, mtime=0),
        etag=f'"{digest}"',
        gzip_etag=f'"{digest}-gzip"',
        media_type=_TYPES[suffix],
    )


# A weight (RFC 9110 12.4.2): 0 to 1, at most three decimals.
_QVALUE = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")
# An entity tag, weak or strong, in a list; its opaque part may hold commas.
_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')
# The weight of identity when the client names neither it nor ``*``: acceptable, but less
# wanted than any coding it names (the least weight a coding it accepts can have).
_UNNAMED_IDENTITY = 0.001


def weights(accept_encoding: str) -> dict[str, float]:
    """Each coding ``Accept-Encoding`` names, lower-cased, with its weight (1 when it
    gives none); a member whose weight is no valid qvalue says nothing and is left out."""
    found: dict[str, float] = {}
    for member in accept_encoding.split(","):
        coding, *params = (part.strip() for part in member.split(";"))
        q = next((p.split("=", 1)[1].strip() for p in params if p[:2].lower() == "q="), "1")
        if coding and _QVALUE.fullmatch(q):
            found.setdefault(coding.lower(), float(q))
    return found


def coding(accept_encoding: str | None) -> str | None:
    """What to send, ``gzip`` or ``identity``, by the weights ``accept_encoding`` gives
    (``x-gzip`` is ``gzip``; ``*`` weighs every coding it does not name); None when both
    are refused (RFC 9110 12.5.3). Without the header, the file as it is: a client that
    names no coding (a script, ``curl``) may not undo one."""
    if accept_encoding is None:
        return "identity"
    given = weights(accept_encoding)
    star = given.get("*")
    zipped = max((given[c] for c in ("gzip", "x-gzip") if c in given), default=star or 0.0)
    plain = given.get("identity", _UNNAMED_IDENTITY if star is None else star)
    if zipped > 0 and zipped >= plain:
        return "gzip"
    return "identity" if plain > 0 else None


def none_match(if_none_match: str, etag: str) -> bool:
    """Whether ``If-None-Match`` holds ``etag`` or is ``*``; the comparison is weak (a
    ``W/`` tag matches its strong twin), as RFC 9110 13.1.2 has it for this header."""
    if if_none_match.strip() == "*":
        return True
    return etag in _ENTITY_TAG.findall(if_none_match)


def serve(request: Request, path: str | None) -> Response:
    """``path`` (or 404 in the API's error shape when None), gzipped for a client that
    takes it (406 for one that takes neither it nor the file as it is). Browsers revalidate
    each time (``no-cache``) and get 304 while the file is the same, so a new release is
    seen at once without sending the large library files again."""
    if path is None:
        return JSON({"error": {"code": "not_found", "message": "no such file"}}, status_code=404)
    asset = load(path)
    headers = {"cache-control": "no-cache", "vary": "accept-encoding"}
    chosen = coding(request.headers.get("accept-encoding"))
    if chosen is None:
        body = {"error": {"code": "not_acceptable", "message": "gzip and identity refused"}}
        return JSON(body, status_code=406, headers=headers)
    zipped = chosen == "gzip"
    headers["etag"] = asset.gzip_etag if zipped else asset.etag
    if none_match(request.headers.get("if-none-match", ""), headers["etag"]):
        return Response(status_code=304, headers=headers)
    if zipped:
        headers["content-encoding"] = "gzip"
    content = asset.gzipped if zipped else asset.body
    return Response(content, media_type=asset.media_type, headers=headers)


def catalog(own: tuple[str, ...], libs: tuple[Vendored, ...]) -> dict[str, str]:
    """Served name -> path under ``static/``: a page's own files and the loadable files
    (scripts and styles) of the libraries it uses."""
    found = {name: name for name in own}
    for lib in libs:
        for name in lib.files:
            base = name.rsplit("/", 1)[-1]
            if base[base.rfind(".") :] in _TYPES:
                found[base] = vendored_path(lib, name)
    return found
