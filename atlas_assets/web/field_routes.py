"""Routes of the charts and the table beside the map (registered by `app.create_app`).

All under `/api/maps/<map>/`:

- `GET fields.json`: every field with its kind and whether it is a date (`temporal`).
- `GET time/<name>`: a date field as float64 ms since the epoch per row (little-endian, NaN missing):
  exact, where the float32 colouring column of `field/<name>` is only good to minutes.
- `GET topic_density?field=&start=&end=&depth=`: rows per topic with start <= field <= end, as
  `map.topics.get_topic_density` counts them (the end included; every depth summed by label, or one
  `depth`; start/end: ms since the epoch or ISO 8601).
- `POST rows?sort=&order=asc|desc&offset=&limit=`: a page of the table of the rows in the body
  (uint32, little-endian; `?scope=all` for every row) sorted by a field: total, columns, cells.
- `POST rows.csv?sort=&order=`: every field of those rows, full text, as a CSV attachment.

The POST bodies are only read (nothing is written); like the tag routes they take
`application/octet-stream`, which another site's page cannot send without a CORS preflight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atlas_assets.web import field_table
from atlas_assets.web.map_types import MapSource

MAX_ROWS_BODY_BYTES = 4 * 4_000_000  # 4M rows as uint32
MAX_PAGE_ROWS = 2000

Authorise = Callable[[Request], MapSource]
Headers = Callable[[MapSource], dict[str, str]]


def _time_ms(text: str | None, name: str) -> float:
    if text is None or not text.strip():
        raise HTTPException(400, f"pass ?{name}= as ms since the epoch or an ISO 8601 time")
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise HTTPException(400, f"{name}={text!r} is not a time") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return float(stamp.value // 1_000_000)


async def _body_rows(request: Request, count: int) -> np.ndarray:
    if request.query_params.get("scope") == "all":
        return np.arange(count, dtype=np.int64)
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/octet-stream":
        raise HTTPException(415, "send rows as application/octet-stream (uint32)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_ROWS_BODY_BYTES:
            raise HTTPException(413, "too many rows")
        chunks.append(chunk)
    body = b"".join(chunks)
    if len(body) % 4:
        raise HTTPException(400, "rows must be uint32 (a multiple of 4 bytes)")
    rows = np.frombuffer(body, dtype="<u4").astype(np.int64)
    if rows.size and rows.max() >= count:
        raise HTTPException(400, "a row is out of range for this map")
    return rows


def _ordered(source: MapSource, request: Request, rows: np.ndarray) -> np.ndarray:
    sort = request.query_params.get("sort") or None
    descending = request.query_params.get("order", "asc") == "desc"
    try:
        return field_table.sorted_rows(source, rows, sort, descending)
    except KeyError:
        raise HTTPException(400, f"this map has no field {sort!r} to sort by") from None
    except LookupError as error:
        raise HTTPException(404, str(error)) from None


def field_routes(prefix: str, authorised_source: Authorise, cache_headers: Headers) -> list[Route]:
    """The routes above, for `create_app`'s routing table (`prefix`: the map API's path)."""

    def fields(request: Request) -> JSONResponse:
        source = authorised_source(request)
        return JSONResponse({"fields": field_table.field_summaries(source)}, headers=cache_headers(source))

    def time(request: Request) -> Response:
        source = authorised_source(request)
        try:
            values = field_table.time_values(source, request.path_params["name"])
        except (KeyError, LookupError):
            raise HTTPException(404, f"this map has no date field {request.path_params['name']!r}") from None
        return Response(np.ascontiguousarray(values, dtype="<f8").tobytes(), media_type="application/octet-stream",
                        headers=cache_headers(source))

    def density(request: Request) -> JSONResponse:
        source = authorised_source(request)
        params = request.query_params
        start, end = _time_ms(params.get("start"), "start"), _time_ms(params.get("end"), "end")
        try:
            depth = int(params["depth"]) if params.get("depth") else None
            counts = field_table.topic_density(source, params.get("field", ""), start, end, depth)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        except (KeyError, LookupError):
            raise HTTPException(404, f"this map has no date field {params.get('field', '')!r}") from None
        return JSONResponse({"field": params.get("field"), "start": start, "end": end, "depth": depth,
                             "rule": "start <= t <= end", "topics": counts}, headers=cache_headers(source))

    async def rows(request: Request) -> JSONResponse:
        source = authorised_source(request)
        selected = await _body_rows(request, len(source.points()))
        ordered = _ordered(source, request, selected)
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
            limit = min(MAX_PAGE_ROWS, max(0, int(request.query_params.get("limit", "100"))))
        except ValueError:
            raise HTTPException(400, "offset and limit must be integers") from None
        page: dict[str, Any] = field_table.rows_json(source, ordered[offset:offset + limit])
        page.update(total=len(ordered), offset=offset)
        return JSONResponse(page, headers=cache_headers(source))

    async def rows_csv(request: Request) -> Response:
        source = authorised_source(request)
        selected = await _body_rows(request, len(source.points()))
        ordered = _ordered(source, request, selected)
        name = source.key.replace("/", "-") + ".csv"
        headers = {**cache_headers(source), "Content-Disposition": f'attachment; filename="{name}"'}
        return Response(field_table.rows_csv(source, ordered), media_type="text/csv; charset=utf-8", headers=headers)

    return [
        Route(prefix + "/fields.json", fields),
        Route(prefix + "/time/{name}", time),
        Route(prefix + "/topic_density", density),
        Route(prefix + "/rows", rows, methods=["POST"]),
        Route(prefix + "/rows.csv", rows_csv, methods=["POST"]),
    ]
