"""Image blobs: read (path, bytes or PIL image), validate, hash, store once per content hash.

A blob is referred to as `<sha256>.<ext>` (the `_blob` column) and lives at `blobs/<sha256>.<ext>`
(read back with `DatasetStore.read_blob`).
Bytes given as a path or as bytes are stored unchanged; a PIL image is stored as PNG.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas_assets.errors import InvalidImageError
from resources.storage.files import StoreFiles

_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff"}


@dataclass(frozen=True)
class PreparedBlob:
    """A validated image: its reference (`<sha256>.<ext>`) and where its bytes come from."""

    ref: str
    data: bytes | None  # in memory (bytes or encoded PIL image) ...
    source: Path | None  # ... or read again from this file when stored


def _decode_check(data: bytes, what: str) -> str:
    """The image's file extension; `what` names it in errors ("image a/b.png (row 3)" or "blob of row 3")."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            pixels = image.width * image.height
            if Image.MAX_IMAGE_PIXELS and pixels > Image.MAX_IMAGE_PIXELS:
                # PIL only warns up to twice its limit; decoding such a bomb would take gigabytes
                raise InvalidImageError(
                    f"{what} is {image.width}x{image.height} = {pixels:,} pixels, more than the "
                    f"{Image.MAX_IMAGE_PIXELS:,} allowed (a decompression bomb?); shrink the image"
                )
            image.verify()  # structure and checksums
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # the pixels decode (verify alone misses truncated data)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
        raise InvalidImageError(
            f"{what} is not a readable image ({error}); fix or remove that file"
        ) from None
    extension = _EXTENSIONS.get(image_format or "")
    if extension is None:
        raise InvalidImageError(
            f"{what} is a {image_format} image; store images as "
            f"{', '.join(sorted(_EXTENSIONS))}"
        )
    return extension


def prepare_blob(blob: Any, row: int) -> PreparedBlob:
    """Validate one blob (naming `row` on failure) and compute its content reference."""
    from PIL import Image

    source: Path | None = None
    if isinstance(blob, (str, os.PathLike)):
        source = Path(blob)
        try:
            data = source.read_bytes()
        except OSError as error:
            raise InvalidImageError(f"image {source} (row {row}) cannot be read ({error.strerror})") from None
    elif isinstance(blob, (bytes, bytearray, memoryview)):
        data = bytes(blob)
    elif isinstance(blob, Image.Image):
        buffer = io.BytesIO()
        try:
            blob.save(buffer, format="PNG")
        except (OSError, ValueError) as error:
            raise InvalidImageError(f"blob of row {row}: the PIL image cannot be encoded ({error})") from None
        data = buffer.getvalue()
    else:
        raise InvalidImageError(
            f"blob of row {row} is a {type(blob).__name__}; pass a file path, bytes or a PIL image"
        )
    extension = _decode_check(data, f"image {source} (row {row})" if source is not None else f"blob of row {row}")
    ref = f"{hashlib.sha256(data).hexdigest()}.{extension}"
    keep_in_memory = source is None
    return PreparedBlob(ref=ref, data=data if keep_in_memory else None, source=source)


def store_blob(files: StoreFiles, key: str, blob: PreparedBlob, mode: int = 0o644) -> bool:
    """Write the blob at `key` unless its content is already stored. True when a new file was written."""
    if files.exists(key):
        return False
    data = blob.data if blob.data is not None else blob.source.read_bytes()  # type: ignore[union-attr]
    if hashlib.sha256(data).hexdigest() != blob.ref.split(".")[0]:
        raise InvalidImageError(f"{blob.source} changed while it was being added; retry")
    files.write_bytes(key, data, mode)
    return True
