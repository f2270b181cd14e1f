"""A map taken out of the store: its state as Parquet, a picture, or one HTML file that works offline.

- `export_parquet`: one row per live datum: the id, every dataset field, x, y, the topic label at each
  depth, the duplicate class and cluster, and one boolean column per tag: what the map shows, in a
  form any tool reads.
- `export_png`: the map as a picture (points coloured by depth-1 topic, the depth-1 labels on top),
  which Atlas cannot produce from Python.
- `export_html`: the interactive viewer of `atlas serve` with every answer it needs inlined (points,
  colouring fields, datum details, tags), so the page opens from a file or an e-mail attachment with no
  server. Search by text works in the page; search by meaning needs the model and falls back to text.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from atlas_assets.errors import IndexNotReadyError, InvalidOptionError

if TYPE_CHECKING:
    from atlas_assets.client.map import AtlasProjection

FORMATS = ("parquet", "png", "html")
DEFAULT_PNG_SIZE = 1600
# Colours of the web viewer (viewer.js PALETTE), so the picture and the page agree.
PALETTE = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
]
BACKGROUND = (247, 247, 245)


def _optional(getter) -> pd.DataFrame | None:
    """An accessor's table, or None when that stage is switched off or not built."""
    try:
        return getter()
    except (IndexNotReadyError, KeyError, FileNotFoundError):
        return None


def map_state(projection: "AtlasProjection") -> pd.DataFrame:
    """Every live datum with its fields, place, topics, duplicate class and tags (one row each)."""
    id_field = projection.dataset.id_field
    frame = projection.data.df
    placed = projection.embeddings.projected
    frame = frame.merge(placed, on=id_field, how="left")
    topics = _optional(lambda: projection.topics.df)
    if topics is not None:
        frame = frame.merge(topics, on=id_field, how="left")
    duplicates = _optional(lambda: projection.duplicates.df)
    if duplicates is not None:
        frame = frame.merge(duplicates, on=id_field, how="left")
    tags = _optional(lambda: projection.tags.df)
    if tags is not None and len(tags.columns) > 1:
        renamed = {name: f"tag:{name}" for name in tags.columns if name != id_field}
        frame = frame.merge(tags.rename(columns=renamed), on=id_field, how="left")
    return frame


def export_parquet(projection: "AtlasProjection", path: Path) -> Path:
    """Write `map_state` as Parquet (with the map's name and id in the file's metadata)."""
    table = pa.Table.from_pandas(map_state(projection), preserve_index=False)
    metadata = {
        b"atlas.dataset": projection.dataset.identifier.encode(),
        b"atlas.map_name": projection.name.encode(),
        b"atlas.index_id": projection.atlas_index_id.encode(),
    }
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return path


# --- picture -----------------------------------------------------------------------------------


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    value = int(hex_colour[1:], 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def _font(size: int):
    from PIL import ImageFont

    for candidate in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "DejaVuSans-Bold.ttf"):
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def render_png(
    xy: np.ndarray,
    codes: np.ndarray | None = None,
    labels: list[tuple[str, float, float]] | None = None,
    size: int = DEFAULT_PNG_SIZE,
    title: str | None = None,
) -> bytes:
    """The points on a light background, coloured by integer code, with text labels at map positions."""
    import io

    from PIL import Image, ImageDraw

    if size < 64:
        raise InvalidOptionError(f"a picture needs at least 64 pixels a side, got {size}")
    margin = max(8, size // 40)
    canvas = np.zeros((size, size, 3), dtype=np.float32)
    canvas[:] = BACKGROUND
    finite = np.isfinite(xy).all(axis=1)
    xy = xy[finite]
    codes = np.zeros(len(finite), np.int64) if codes is None else np.asarray(codes, np.int64)
    codes = codes[finite]
    if len(xy):
        low = xy.min(axis=0)
        extent = float(max((xy.max(axis=0) - low).max(), 1e-9))
        scale = (size - 2 * margin - 1) / extent
        offset = (size - (xy.max(axis=0) - low) * scale) / 2

        def to_pixels(points: np.ndarray) -> np.ndarray:
            scaled = (points - low) * scale + offset
            return np.column_stack([scaled[:, 0], size - 1 - scaled[:, 1]])

        pixels = np.rint(to_pixels(xy)).astype(np.int64)
        palette = np.array([_rgb(c) for c in PALETTE], dtype=np.float32)
        colours = np.where(codes[:, None] >= 0, palette[np.mod(codes, len(palette))], np.float32(150))
        # Dots of radius ~size/800 px, alpha-blended so dense regions read darker.
        radius = max(1, size // 800)
        alpha = 0.6 if len(xy) < 50_000 else 0.35
        for dx in range(-radius, radius + 1):
            for dy in range(-radius, radius + 1):
                if dx * dx + dy * dy > radius * radius + 1:
                    continue
                px = np.clip(pixels[:, 0] + dx, 0, size - 1)
                py = np.clip(pixels[:, 1] + dy, 0, size - 1)
                canvas[py, px] = canvas[py, px] * (1 - alpha) + colours * alpha
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if labels and len(xy):
        font = _font(max(11, size // 70))
        for text, x, y in labels:
            if not np.isfinite([x, y]).all():
                continue
            px, py = to_pixels(np.array([[x, y]], dtype=np.float64))[0]
            draw.text((px, py), text, font=font, fill=(30, 30, 30), anchor="mm", stroke_width=3, stroke_fill=(255, 255, 255))
    if title:
        draw.text((margin, margin), title, font=_font(max(12, size // 60)), fill=(60, 60, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def export_png(projection: "AtlasProjection", path: Path, size: int = DEFAULT_PNG_SIZE) -> Path:
    """The map as a PNG, coloured by depth-1 topic with the depth-1 topic labels."""
    placed = projection.embeddings.projected
    xy = placed[["x", "y"]].to_numpy(dtype=np.float64)
    codes = None
    labels: list[tuple[str, float, float]] = []
    metadata = _optional(lambda: projection.topics.metadata)
    topics = _optional(lambda: projection.topics.df)
    if metadata is not None and topics is not None and len(metadata):
        depth_one = metadata[metadata["depth"] == 1].sort_values("size", ascending=False).reset_index(drop=True)
        code_of = {label: code for code, label in enumerate(depth_one["topic_short_description"])}
        id_field = projection.dataset.id_field
        by_id = topics.set_index(id_field)["topic_depth_1"]
        codes = np.array([code_of.get(label, -1) for label in by_id.reindex(placed[id_field]).to_numpy()])
        labels = [
            (str(row.topic_short_description), float(row.centroid_x), float(row.centroid_y))
            for row in depth_one.itertuples()
        ]
    png = render_png(xy, codes, labels, size=size, title=f"{projection.dataset.identifier} · {projection.name}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


# --- offline page ------------------------------------------------------------------------------

# Answers the viewer's API calls from the inlined data. It computes the API base exactly as
# viewer.js does (from location.pathname), so it intercepts the same URLs wherever the file is.
_SHIM = r"""
(function () {
  "use strict";
  const data = window.__ATLAS_EXPORT__;
  const parts = location.pathname.split("/").filter(Boolean);
  const apiBase = "/api/maps/" + parts.slice(1, 4).join("/");
  const realFetch = window.fetch ? window.fetch.bind(window) : null;
  const bytes = (b64) => { const s = atob(b64); const out = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i); return out; };
  const json = (value, status) => new Response(JSON.stringify(value), { status: status || 200, headers: { "Content-Type": "application/json" } });
  const binary = (array) => new Response(array, { status: 200, headers: { "Content-Type": "application/octet-stream" } });
  let lowered = null;
  function textSearch(query, k) {
    if (!lowered) lowered = data.datums.map((d) => JSON.stringify(d.fields).toLowerCase());
    const q = query.toLowerCase();
    const rows = [];
    for (let i = 0; i < lowered.length && rows.length < k; i++) if (lowered[i].includes(q)) rows.push(i);
    return rows;
  }
  window.fetch = async function (input, options) {
    const url = typeof input === "string" ? input : input.url;
    if (!url.startsWith(apiBase)) return realFetch(input, options);
    const rest = url.slice(apiBase.length);
    const path = rest.split("?")[0];
    const params = new URLSearchParams(rest.includes("?") ? rest.slice(rest.indexOf("?") + 1) : "");
    if ((options && options.method && options.method !== "GET")) return json({ error: "this is an offline export: tags are read-only here" }, 409);
    if (path === "/meta") return json(data.meta);
    if (path === "/points.bin") return binary(bytes(data.points));
    if (path.startsWith("/field/")) {
      const name = decodeURIComponent(path.slice(7));
      return name in data.fields ? binary(bytes(data.fields[name])) : json({ error: "this export has no field " + name }, 404);
    }
    if (path.startsWith("/datum/")) {
      const row = parseInt(path.slice(7), 10);
      return row >= 0 && row < data.datums.length ? json(data.datums[row]) : json({ error: "row out of range" }, 404);
    }
    if (path === "/search") {
      const rows = textSearch(params.get("q") || "", parseInt(params.get("k") || "100", 10));
      return json({ mode: "text", count: rows.length, rows: rows, scores: rows.map(() => 0) });
    }
    if (path === "/tags") return json({ tags: data.meta.tags });
    if (path.startsWith("/tags/")) {
      const name = decodeURIComponent(path.slice(6));
      return binary(new Uint8Array(new Uint32Array(data.tagRows[name] || []).buffer));
    }
    return json({ error: "not available in an offline export" }, 404);
  };
})();
"""


def _script_safe(text: str) -> str:
    """Text that cannot end an inline <script> early."""
    return text.replace("</", "<\\/")


def export_html(projection: "AtlasProjection", path: Path) -> Path:
    """One HTML file holding the viewer and the whole map; opens offline, from anywhere."""
    from atlas_assets.web.app import STATIC_DIR, encode_field, encode_points, map_meta
    from atlas_assets.web.discovery import store_map_source

    dataset = projection.dataset
    source = store_map_source(dataset.store, dataset._record(), projection.index_record())
    meta = map_meta(source)
    count = int(meta["count"])
    fields = {
        info.name: base64.b64encode(encode_field(source.field_column(info.name))).decode("ascii")
        for info in source.fields()
        if info.kind in ("categorical", "numeric")
    }
    tag_rows = {
        name: [int(row) for row in source.tag_rows(name)] for name in source.tag_counts()
    }
    document = {
        "meta": meta,
        "points": base64.b64encode(encode_points(source.points())).decode("ascii"),
        "fields": fields,
        "datums": [source.datum(row) for row in range(count)],
        "tagRows": tag_rows,
    }
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    css = (STATIC_DIR / "viewer.css").read_text(encoding="utf-8")
    viewer = (STATIC_DIR / "viewer.js").read_text(encoding="utf-8")
    import html as html_module

    page = page.replace("{{TITLE}}", html_module.escape(str(meta["title"])))
    page = page.replace("{{WRITE_TOKEN}}", "")  # an exported page changes no tags
    page = page.replace('<link rel="stylesheet" href="/static/viewer.css">', f"<style>\n{css}\n</style>")
    payload = _script_safe(json.dumps(document, separators=(",", ":"), default=str))
    scripts = (
        f"<script>window.__ATLAS_EXPORT__ = {payload};</script>\n"
        f"<script>{_script_safe(_SHIM)}</script>\n"
        f"<script>{_script_safe(viewer)}</script>"
    )
    if '<script src="/static/viewer.js"></script>' not in page:
        raise IndexNotReadyError("the web viewer's index.html changed shape; update atlas_assets/cli/export.py")
    page = page.replace('<script src="/static/viewer.js"></script>', scripts)
    # The viewer's other files (labels, density, charts, table) are inlined too: nothing is fetched.
    page = re.sub(
        r'<script src="/static/([\w.-]+\.js)"></script>',
        lambda match: f"<script>{_script_safe((STATIC_DIR / match.group(1)).read_text(encoding='utf-8'))}</script>",
        page,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def export_map(projection: "AtlasProjection", fmt: str, path: Path, size: int = DEFAULT_PNG_SIZE) -> Path:
    """Dispatch on `fmt` (parquet, png or html)."""
    if fmt == "parquet":
        return export_parquet(projection, path)
    if fmt == "png":
        return export_png(projection, path, size=size)
    if fmt == "html":
        return export_html(projection, path)
    raise InvalidOptionError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
