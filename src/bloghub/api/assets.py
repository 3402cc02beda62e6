"""Static files of the pages bloghub serves itself: its own scripts and styles, and the
browser libraries vendored from npm (pinned below; ``scripts/vendor-assets`` fetches them
and checks them against the pins). Nothing is loaded from another origin at run time."""

from __future__ import annotations

import gzip
import hashlib
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
    media_type: str


def vendored_path(lib: Vendored, name: str) -> str:
    """Where a vendored file lies under ``static/``: flat, by its base name."""
    return f"vendor/{lib.folder}/{name.rsplit('/', 1)[-1]}"


@cache
def load(path: str) -> Asset:
    """A file under ``static/``, read once: package data does not change while we run."""
    body = files("bloghub.api").joinpath(f"static/{path}").read_bytes()
    suffix = path[path.rfind(".") :]
    return Asset(
        body=body,
        gzipped=gzip.compress(body, mtime=0),
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        media_type=_TYPES[suffix],
    )


def serve(request: Request, path: str | None) -> Response:
    """``path`` (or 404 in the API's error shape when None). Browsers revalidate each time
    (``no-cache``) and get 304 while the file is the same, so a new release is seen at once
    without sending the large library files again."""
    if path is None:
        return JSON({"error": {"code": "not_found", "message": "no such file"}}, status_code=404)
    asset = load(path)
    headers = {"cache-control": "no-cache", "etag": asset.etag, "vary": "accept-encoding"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["content-encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


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
