"""The map server: a page per map and a small JSON + binary API (Starlette, served by uvicorn).

Routes (`<map>` is `<org>/<slug>/<index>`):

- `GET /` lists the public maps; `GET /maps/<map>` is the viewer page (`AtlasProjection.map_link`).
- `GET /api/maps/<map>/meta` JSON: size, bounds, topics with label positions, fields, tags.
- `GET /api/maps/<map>/points.bin` every point in 11 bytes: x float32[n] | y float32[n] |
  depth-1 topic uint16[n] | flags uint8[n] (bit 0: in a duplicate cluster, bit 1: deletion
  candidate); little-endian, columns back to back so the browser views them without copying.
- `GET /api/maps/<map>/field/<name>` one colouring column: uint32 length L, L bytes of JSON
  (kind, categories or min/max), zero padding to 4 bytes, then uint16 codes or float32 values.
- `GET /api/maps/<map>/datum/<row>` one datum's details (fetched lazily on hover);
  `GET .../image/<row>` its image bytes for image maps.
- `GET /api/maps/<map>/search?q=...&mode=text|meaning&k=...` matching rows, best first.
- `GET /api/maps/<map>/tags`, `GET .../tags/<tag>` (rows as uint32), `POST .../tags/<tag>`
  (JSON `{"rows": [...], "action": "add"|"remove"}` or a uint32 body with `?action=`): `tag_routes.py`.

Private maps need their dataset's token (`Authorization: Bearer` or `?token=`); without it every
route answers 401 with the same body as for a map that does not exist. Changing tags needs the
server's write token (`X-Atlas-Write-Token`, carried by the page on a loopback server) on every map.
Running the server (limits for slow clients, `BackgroundServer`) is `atlas_assets.web.server`; the
threat model is docs/security.md.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import struct
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from atlas_assets.errors import AtlasError, ConfigurationError, ModelError
from atlas_assets.web.auth import new_write_token, presented_token, token_matches
from atlas_assets.web.field_routes import field_routes
from atlas_assets.web.server import LOOPBACK_HOSTS, BackgroundServer, is_loopback, run_server
from atlas_assets.web.source import NO_TOPIC, FieldColumn, MapPoints, MapSource
from atlas_assets.web.tag_routes import MAX_TAG_BODY_BYTES, capped_body, tag_routes

__all__ = [
    "BackgroundServer", "DEFAULT_PORT", "LOOPBACK_HOSTS", "MAX_TAG_BODY_BYTES", "STATIC_DIR", "StaticRegistry",
    "capped_body", "create_app", "encode_field", "encode_points", "map_meta", "map_path", "map_url", "serve",
]


STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_PORT = 8765  # the port of atlas_assets.config.DEFAULT_MAP_SERVER (map_link)
# the viewer loads only its own files: no inline script, nothing from elsewhere (a datum's text is
# always inserted as text, and this keeps it harmless even if that ever changed)
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
STALE_MAP = "this map was rebuilt since the page was loaded: reload the page"
FLAG_DUPLICATE = 1
FLAG_DELETION_CANDIDATE = 2
NOT_AVAILABLE = (
    "no such map, or it is private: pass its access token as 'Authorization: Bearer <token>' "
    "or '?token=<token>' (`atlas serve` prints the links with tokens)"
)


class MapRegistry(Protocol):
    """Where the server finds maps by key."""

    def get(self, key: str) -> MapSource | None: ...

    def sources(self) -> list[MapSource]: ...


def missing_map_token(registry: object) -> str | None:
    """The decoy token an unknown map is checked against: the registry's own (`missing_token()`, the
    same lookup a private map's token costs) or, for registries without one, none."""
    lookup = getattr(registry, "missing_token", None)
    return lookup() if callable(lookup) else None


class StaticRegistry:
    """A fixed set of map sources (tests, benchmarks, `serve(sources=[...])`)."""

    def __init__(self, sources: Iterable[MapSource]) -> None:
        self._sources = {source.key: source for source in sources}

    def get(self, key: str) -> MapSource | None:
        return self._sources.get(key)

    def sources(self) -> list[MapSource]:
        return list(self._sources.values())


def map_path(key: str) -> str:
    """The page path of a map key (`org/slug/index`), each part URL-quoted."""
    return "/maps/" + "/".join(quote(part, safe="") for part in key.split("/"))


def map_url(key: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None) -> str:
    """The full address of a map's page (with `?token=` for a private map)."""
    shown_host = f"[{host}]" if ":" in host else host
    suffix = f"?token={quote(token, safe='')}" if token else ""
    return f"http://{shown_host}:{port}{map_path(key)}{suffix}"


# encoding ------------------------------------------------------------------------------------------
def encode_points(points: MapPoints) -> bytes:
    """The 11-bytes-per-point binary form of a map's points (see the module docstring)."""
    n = len(points)
    topic = points.topic_codes[0] if points.topic_codes else np.full(n, NO_TOPIC, dtype=np.uint16)
    flags = np.zeros(n, dtype=np.uint8)
    flags[points.duplicate_class > 0] |= FLAG_DUPLICATE
    flags[points.duplicate_class == 2] |= FLAG_DELETION_CANDIDATE
    parts = [
        np.ascontiguousarray(points.x, dtype="<f4").tobytes(),
        np.ascontiguousarray(points.y, dtype="<f4").tobytes(),
        np.ascontiguousarray(topic, dtype="<u2").tobytes(),
        flags.tobytes(),
    ]
    return b"".join(parts)


def encode_with_header(header: dict[str, Any], payload: bytes) -> bytes:
    """uint32 JSON length + JSON + zero padding to a multiple of 4 + payload."""
    text = json.dumps(header, separators=(",", ":")).encode()
    padding = (-(4 + len(text))) % 4
    return struct.pack("<I", len(text)) + text + b"\0" * padding + payload


def encode_field(column: FieldColumn) -> bytes:
    header: dict[str, Any] = {"name": column.name, "kind": column.kind}
    if column.kind == "categorical":
        assert column.codes is not None
        header.update(categories=column.categories, counts=column.counts, dtype="uint16")
        payload = np.ascontiguousarray(column.codes, dtype="<u2").tobytes()
    else:
        assert column.values is not None
        header.update(min=column.minimum, max=column.maximum, dtype="float32")
        payload = np.ascontiguousarray(column.values, dtype="<f4").tobytes()
    return encode_with_header(header, payload)


def _bounds(points: MapPoints) -> list[float]:
    if len(points) == 0:
        return [-1.0, -1.0, 1.0, 1.0]
    finite_x = points.x[np.isfinite(points.x)]
    finite_y = points.y[np.isfinite(points.y)]
    return [float(finite_x.min()), float(finite_y.min()), float(finite_x.max()), float(finite_y.max())]


def map_version(source: MapSource) -> str:
    """A short fingerprint of the map's current build (sources without `version()`: fixed)."""
    version = getattr(source, "version", None)
    if not callable(version):
        return "fixed"
    return hashlib.sha1(repr(version()).encode()).hexdigest()[:16]


def map_meta(source: MapSource) -> dict[str, Any]:
    """The JSON description of a map the viewer starts from."""
    points = source.points()
    topics = source.topics()
    duplicate_counts = np.bincount(points.duplicate_class, minlength=3)
    return {
        "key": source.key,
        "version": map_version(source),
        "title": source.title,
        "modality": source.modality,
        "count": len(points),
        "bounds": _bounds(points),
        "depths": len(points.topic_codes),
        "topics": [
            {
                "depth": t.depth, "code": t.code, "label": t.label, "size": t.size,
                "x": t.x, "y": t.y, "parent": t.parent_code, "keywords": t.keywords,
                "description": t.description,
            }
            for t in topics
        ],
        "fields": [{"name": f.name, "kind": f.kind} for f in source.fields()],
        "duplicates": {"duplicates": int(duplicate_counts[1] + duplicate_counts[2]),
                       "deletion_candidates": int(duplicate_counts[2])},
        "tags": [{"name": name, "count": count} for name, count in source.tag_counts().items()],
        "points_format": {"bytes_per_point": 11, "layout": ["x:f32", "y:f32", "topic1:u16", "flags:u8"],
                          "no_topic": int(NO_TOPIC), "flags": {"duplicate": FLAG_DUPLICATE,
                                                               "deletion_candidate": FLAG_DELETION_CANDIDATE}},
    }


# the app ---------------------------------------------------------------------------------------------
class _PointCache:
    """Encoded point buffers per map source object, plain and gzip-compressed: built once, served
    many times (1M points = 11 MB, about 8 MB compressed). Keyed weakly by the source, so a
    registry that replaces a source after the map was rebuilt also drops its stale buffers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffers: weakref.WeakKeyDictionary[Any, dict[str, bytes]] = weakref.WeakKeyDictionary()

    def get(self, source: MapSource, compressed: bool = False) -> bytes:
        with self._lock:
            buffers = self._buffers.get(source)
            if buffers is None:
                buffers = self._buffers[source] = {"plain": encode_points(source.points())}
            if compressed and "gzip" not in buffers:
                buffers["gzip"] = gzip.compress(buffers["plain"], compresslevel=5)
            return buffers["gzip" if compressed else "plain"]


def create_app(
    registry: MapRegistry | Iterable[MapSource],
    *,
    allowed_hosts: list[str] | None = None,
    write_token: str | None = None,
    write_token_in_page: bool = True,
) -> Starlette:
    """The Starlette app serving the maps in `registry`.

    allowed_hosts: Host headers accepted (None: any); `serve` on a loopback address passes the
    loopback names, which stops DNS-rebinding pages from reaching the server through a browser.
    write_token: the token tag changes need (default: a fresh random one; `app.state.write_token`).
    write_token_in_page: whether the viewer page carries it (the single-user loopback case); a
    server reachable from elsewhere leaves it out and hands it only to the people who may tag.
    """
    if not hasattr(registry, "get"):
        registry = StaticRegistry(registry)  # type: ignore[arg-type]
    maps: MapRegistry = registry  # type: ignore[assignment]
    cache = _PointCache()
    index_html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    write_token = write_token or new_write_token()
    page_token = html.escape(write_token) if write_token_in_page else ""

    def authorised_source(request: Request) -> MapSource:
        params = request.path_params
        key = "/".join((params["org"], params["slug"], params["index"]))
        source = maps.get(key)
        token = presented_token(request.headers.get("authorization"), request.query_params.get("token"))
        if source is None:
            # the same work as for a private map (a token lookup, a comparison), and the same answer
            token_matches(missing_map_token(maps), token)
            raise HTTPException(401, NOT_AVAILABLE, headers={"WWW-Authenticate": "Bearer"})
        if not source.is_public and not token_matches(source.access_token(), token):
            raise HTTPException(401, NOT_AVAILABLE, headers={"WWW-Authenticate": "Bearer"})
        seen = request.query_params.get("v")
        if seen is not None and seen != map_version(source):
            # rows mean other datums after a rebuild: never answer (or tag!) with the old numbering
            raise HTTPException(409, STALE_MAP)
        return source

    def cache_headers(source: MapSource) -> dict[str, str]:
        return {"Cache-Control": "no-store" if not source.is_public else "no-cache"}

    def home(request: Request) -> HTMLResponse:
        items = "".join(
            f'<li><a href="{html.escape(map_path(s.key))}">{html.escape(s.title)}</a></li>'
            for s in maps.sources()
            if s.is_public
        )
        body = items or "<li>No public maps yet. Private maps open with their token link.</li>"
        return HTMLResponse(
            "<!doctype html><html lang=en><head><meta charset=utf-8><title>Atlas maps</title>"
            '<link rel="stylesheet" href="/static/viewer.css"></head><body class="home">'
            f"<main><h1>Maps</h1><ul>{body}</ul></main></body></html>"
        )

    def page(request: Request) -> Response:
        try:
            source = authorised_source(request)
        except HTTPException:
            return HTMLResponse(
                "<!doctype html><html lang=en><head><meta charset=utf-8><title>Map not available"
                f"</title></head><body><main><h1>Map not available</h1><p>{html.escape(NOT_AVAILABLE)}"
                "</p></main></body></html>",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"},
            )
        title = html.escape(source.title)
        headers = {**cache_headers(source), "Content-Security-Policy": PAGE_POLICY, "Referrer-Policy": "no-referrer"}
        # a request relayed by a proxy comes from elsewhere: the page then carries no write token
        relayed = any(name in request.headers for name in FORWARDING_HEADERS)
        body = index_html.replace("{{TITLE}}", title).replace("{{WRITE_TOKEN}}", "" if relayed else page_token)
        return HTMLResponse(body, headers=headers)

    def meta(request: Request) -> JSONResponse:
        source = authorised_source(request)
        return JSONResponse(map_meta(source), headers=cache_headers(source))

    def points(request: Request) -> Response:
        source = authorised_source(request)
        headers = cache_headers(source)
        client = request.client.host if request.client else ""
        # compressing pays off across a network, not on this machine's loopback
        wants_gzip = "gzip" in request.headers.get("accept-encoding", "") and not is_loopback(client)
        if wants_gzip:
            headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return Response(cache.get(source, compressed=wants_gzip), media_type="application/octet-stream",
                        headers=headers)

    def field(request: Request) -> Response:
        source = authorised_source(request)
        try:
            column = source.field_column(request.path_params["name"])
        except KeyError:
            raise HTTPException(404, f"this map has no field {request.path_params['name']!r}") from None
        return Response(encode_field(column), media_type="application/octet-stream", headers=cache_headers(source))

    def datum(request: Request) -> JSONResponse:
        source = authorised_source(request)
        try:
            details = source.datum(int(request.path_params["row"]))
        except IndexError:
            raise HTTPException(404, "row out of range") from None
        return JSONResponse(details, headers=cache_headers(source))

    def image(request: Request) -> Response:
        source = authorised_source(request)
        try:
            found = source.image(int(request.path_params["row"]))
        except (LookupError, OSError, AtlasError):
            # a map without images (no `_blob` column), a blob gone from disk, a bad blob reference
            found = None
        if found is None:
            raise HTTPException(404, "this datum has no image (only image maps have images)")
        blob, media_type = found
        return Response(blob, media_type=media_type, headers=cache_headers(source))

    def search(request: Request) -> JSONResponse:
        source = authorised_source(request)
        query = request.query_params.get("q", "")
        mode = request.query_params.get("mode", "meaning")
        try:
            k = int(request.query_params.get("k", "100" if mode == "meaning" else "10000"))
        except ValueError:
            raise HTTPException(400, "k must be an integer") from None
        if not query.strip():
            raise HTTPException(400, "empty query: pass ?q=<words>")
        try:
            result = source.search(query, mode=mode, k=k)
        except (LookupError, ModelError) as error:  # the map or its model is not ready: the server's state
            raise HTTPException(409, str(error)) from None
        except ValueError as error:  # the request's (AtlasErrors a user triggers are ValueErrors too)
            raise HTTPException(400, str(error)) from None
        except AtlasError as error:
            raise HTTPException(409, str(error)) from None
        return JSONResponse(
            {"mode": result.mode, "count": int(len(result.rows)), "rows": result.rows.tolist(),
             "scores": [round(float(s), 5) for s in result.scores]},
            headers=cache_headers(source),
        )

    map_prefix = "/api/maps/{org}/{slug}/{index}"
    routes = [
        Route("/", home),
        Route("/maps/{org}/{slug}/{index}", page),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route(map_prefix + "/meta", meta),
        Route(map_prefix + "/points.bin", points),
        Route(map_prefix + "/field/{name}", field),
        Route(map_prefix + "/datum/{row:int}", datum),
        Route(map_prefix + "/image/{row:int}", image),
        Route(map_prefix + "/search", search),
        *tag_routes(map_prefix, authorised_source, cache_headers, write_token),  # tag_routes.py
        *field_routes(map_prefix, authorised_source, cache_headers),  # charts and table: field_routes.py
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)

    # binary columns are compressed once and cached (see _PointCache), images are compressed already
    async def atlas_error(request: Request, error: Exception) -> Response:
        # e.g. IndexNotReadyError: the map exists (the caller is authorised) but is not built yet
        return JSONResponse({"error": str(error)}, status_code=409)

    middleware = [Middleware(GZipMiddleware, minimum_size=2048, compresslevel=6,
                             exclude_content_types=("text/event-stream", "application/octet-stream",
                                                    "image/png", "image/jpeg", "image/gif", "image/webp"))]
    if allowed_hosts is not None:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: http_error, AtlasError: atlas_error})
    app.state.write_token = write_token
    return app


# running -------------------------------------------------------------------------------------------
CLEAR_TEXT_WARNING = (
    "the map server is reachable from other machines over plain HTTP: tokens and map data travel in "
    "clear text; put a TLS reverse proxy in front of it (docs/security.md)"
)


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    sources: Iterable[MapSource] | MapRegistry | None = None,
    announce: Callable[[str], None] = print,
    log_level: str = "warning",
    allow_remote: bool = False,
) -> None:
    """Serve the maps (default: every map under ATLAS_HOME) until interrupted.

    Binds to 127.0.0.1 unless told otherwise. `allow_remote` says that people on other machines reach
    the server, directly (another address: 0.0.0.0, ::, a LAN address, refused without it) or through
    a reverse proxy: then the Host check is off (the proxy passes the public name), pages carry no
    write token (the token to tag with is announced instead), and a server bound beyond loopback
    warns that tokens travel in clear text without TLS.
    """
    remote = allow_remote or not is_loopback(host)
    if not is_loopback(host) and not allow_remote:
        raise ConfigurationError(
            f"--host {host} would serve the maps to other machines over plain HTTP (tokens in clear text); "
            "keep the default 127.0.0.1 and put a TLS reverse proxy in front of it (docs/security.md), "
            "or pass --allow-remote to serve beyond this machine anyway"
        )
    if sources is None:
        from atlas_assets.web.discovery import HomeRegistry

        registry: MapRegistry = HomeRegistry()
    elif hasattr(sources, "get"):
        registry = sources  # type: ignore[assignment]
    else:
        registry = StaticRegistry(sources)  # type: ignore[arg-type]
    write_token = new_write_token()
    app = create_app(registry, allowed_hosts=None if remote else LOOPBACK_HOSTS, write_token=write_token,
                     write_token_in_page=not remote)
    if not is_loopback(host):
        announce(f"warning: {CLEAR_TEXT_WARNING}")
    elif remote:
        announce("serving for a reverse proxy on this machine: it must terminate TLS and pass the Host header "
                 "through (docs/security.md)")
    for source in registry.sources():
        token = None if source.is_public else source.access_token()
        kind = "public " if source.is_public else "private"
        announce(f"{kind} {source.key}: {map_url(source.key, host, port, token)}")
    if remote:
        announce("tags change only with this server's write token: send it as X-Atlas-Write-Token, or "
                 f"append #write={write_token} to a map link you open")
    shown_host = f"[{host}]" if ":" in host else host
    announce(f"map server on http://{shown_host}:{port}/ (Ctrl+C stops it)")
    run_server(app, host, port, log_level)
