"""Small PNG thumbnails of a map for the Dagster UI (stored in the event log: keep them small)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

# Colour-blind-friendly qualitative palette (Okabe-Ito, extended with Tableau 10).
PALETTE = np.array(
    [
        (0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233),
        (213, 94, 0), (240, 228, 66), (78, 121, 167), (242, 142, 43), (225, 87, 89),
        (118, 183, 178), (89, 161, 79), (237, 201, 72), (176, 122, 161), (255, 157, 167),
        (156, 117, 95), (186, 176, 172), (0, 0, 0),
    ],
    dtype=np.uint8,
)


def map_thumbnail(xy: np.ndarray, colour_codes: np.ndarray | None = None, size: int = 256) -> bytes:
    """A PNG of the points on white, coloured by integer code (e.g. depth-1 topic)."""
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    if len(xy):
        low = np.nanmin(xy, axis=0)
        extent = np.maximum(np.nanmax(xy, axis=0) - low, 1e-9)
        scaled = ((xy - low) / extent * (size - 5) + 2).astype(np.int64)
        codes = np.zeros(len(xy), dtype=np.int64) if colour_codes is None else np.asarray(colour_codes)
        colours = PALETTE[np.mod(codes, len(PALETTE))]
        # y grows upwards on a map, downwards in an image
        image[size - 1 - scaled[:, 1], scaled[:, 0]] = colours
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
