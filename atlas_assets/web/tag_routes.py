"""The tag routes (registered by `app.create_app`): `GET .../tags`, `GET .../tags/<tag>` (rows as uint32) and `POST .../tags/<tag>`.

A POST body is JSON `{"rows": [...], "action": "add"|"remove"}` or uint32 rows with `?action=`.
Reading tags needs what reading the map needs; changing them needs the server's write token and,
from a browser, the server's own origin (`atlas_assets.web.auth.write_refusal`). Bodies are capped in
size (16 MiB), in time (BODY_SECONDS) and, for JSON, in nesting (a tag body nests two levels; 100,000
`[` would otherwise exhaust the parser's recursion), so hostile input gets a 4xx with a reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import anyio.to_thread
import numpy as np
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atlas_assets.errors import AtlasError
from atlas_assets.web.auth import WRITE_TOKEN_HEADER, write_refusal
from atlas_assets.web.map_types import MapSource

# A tag of every point of a 1M-point map is 4 MB as uint32 and about 8 MB as JSON.
MAX_TAG_BODY_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 2  # {"rows": [...]}
BODY_SECONDS = 30.0  # a body must arrive within this (a trickling upload holds a connection)
JSON_SHAPE = "body must be JSON {'rows': [int, ...], 'action': 'add'|'remove'}"


async def capped_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes, and with
    408 when it does not arrive within BODY_SECONDS."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body over {limit // (1024 * 1024)} MiB")
    chunks, size = [], 0
    try:
        with anyio.fail_after(BODY_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"request body over {limit // (1024 * 1024)} MiB")
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(408, f"the request body did not arrive within {BODY_SECONDS:.0f} s") from None
    return b"".join(chunks)


def json_depth(body: bytes) -> int:
    """How deep `[` and `{` nest in `body` (brackets inside strings count too: a tag body has none)."""
    openers = body.count(b"[") + body.count(b"{")
    if openers <= MAX_JSON_DEPTH:
        return openers  # the common case, without a pass over the bytes
    data = np.frombuffer(body, dtype=np.uint8)
    steps = np.zeros(len(data), dtype=np.int32)
    steps[(data == ord("[")) | (data == ord("{"))] = 1
    steps[(data == ord("]")) | (data == ord("}"))] = -1
    return int(np.cumsum(steps).max()) if len(data) else 0


def parse_rows(body: bytes, content_type: str, query_action: str | None) -> tuple[np.ndarray, str]:
    """Rows and action of a tag POST; HTTPException 400/415 with the reason when they are malformed."""
    if content_type == "application/json":
        if json_depth(body) > MAX_JSON_DEPTH:
            raise HTTPException(400, f"{JSON_SHAPE}; nesting deeper than {MAX_JSON_DEPTH} levels is refused")
        try:
            document = json.loads(body)
            rows = np.asarray(document.get("rows", []), dtype=np.int64)
            action = str(document.get("action", "add"))
        except (ValueError, TypeError, AttributeError, OverflowError, RecursionError):
            raise HTTPException(400, JSON_SHAPE) from None
    elif content_type == "application/octet-stream":
        if len(body) % 4:
            raise HTTPException(400, "binary body must be uint32 rows (a multiple of 4 bytes)")
        rows = np.frombuffer(body, dtype="<u4").astype(np.int64)
        action = query_action or "add"
    else:
        # simple (CORS-safelisted) content types are refused so other web pages cannot post here
        raise HTTPException(415, "send rows as application/json or application/octet-stream")
    if action not in ("add", "remove"):
        raise HTTPException(400, "action must be 'add' or 'remove'")
    return rows, action


def tag_routes(
    prefix: str,
    authorise: Callable[[Request], MapSource],
    cache_headers: Callable[[MapSource], dict[str, str]],
    write_token: str,
) -> list[Route]:
    """The routes under `prefix` (`/api/maps/{org}/{slug}/{index}`); `authorise` answers the read
    check (401 for a map the caller may not see), `write_token` is the server's."""

    def tags(request: Request) -> JSONResponse:
        source = authorise(request)
        return JSONResponse(
            {"tags": [{"name": n, "count": c} for n, c in source.tag_counts().items()]},
            headers=cache_headers(source),
        )

    def check_write(request: Request) -> None:
        refusal = write_refusal(
            write_token,
            request.headers.get(WRITE_TOKEN_HEADER),
            request.headers.get("origin"),
            request.headers.get("sec-fetch-site"),
            request.headers.get("host"),
        )
        if refusal is not None:
            raise HTTPException(403, refusal)

    async def tag(request: Request) -> Response:
        # the read check first: without it a private map answers exactly as a missing one
        source = authorise(request)
        name = request.path_params["tag"]
        if request.method == "GET":
            try:
                rows = source.tag_rows(name)
            except (LookupError, AtlasError) as error:
                raise HTTPException(409, str(error)) from None
            return Response(np.asarray(rows, dtype="<u4").tobytes(), media_type="application/octet-stream",
                            headers=cache_headers(source))
        check_write(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        body = await capped_body(request, MAX_TAG_BODY_BYTES)
        rows, action = parse_rows(body, content_type, request.query_params.get("action"))

        def apply() -> int:
            if action == "add":
                return source.tag_rows_add(rows, name)
            return source.tag_rows_remove(rows, name)

        try:
            changed = await anyio.to_thread.run_sync(apply)
        except IndexError:
            raise HTTPException(400, "a row is out of range for this map") from None
        except (LookupError, AtlasError) as error:
            raise HTTPException(400, str(error)) from None
        counts = source.tag_counts()
        return JSONResponse({"tag": name, "action": action, "changed": changed, "count": counts.get(name, 0)})

    return [
        Route(prefix + "/tags", tags),
        Route(prefix + "/tags/{tag}", tag, methods=["GET", "POST"]),
    ]
