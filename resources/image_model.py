"""The image embedding runtime: Pillow preprocessing + an onnxruntime session, no torch.

Preprocessing follows how the model was trained: EXIF orientation applied (phone photos are stored
sideways with a rotation tag), converted to RGB (transparent areas composited on white, as a viewer
shows them), the short side resized, the centre cropped square, scaled to [0, 1] and normalised with
the model's mean and standard deviation, channels first.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from atlas_assets.compute.embed import l2_normalise, pool
from atlas_assets.errors import InvalidImageError, ModelError
from resources.model_store import MODEL_FILE, ModelSpec
from resources.onnx_session import make_session

ImageInput = Union[bytes, bytearray, memoryview, str, Path, Image.Image]


def open_image(image: ImageInput, position: int = 0) -> Image.Image:
    """A decoded PIL image from bytes, a path or an image (InvalidImageError names what failed)."""
    if isinstance(image, Image.Image):
        return image
    try:
        if isinstance(image, (bytes, bytearray, memoryview)):
            opened = Image.open(io.BytesIO(bytes(image)))
        elif isinstance(image, (str, Path)):
            opened = Image.open(Path(image))
        else:
            raise InvalidImageError(
                f"image at position {position} is a {type(image).__name__}; give bytes, a file path or a PIL image"
            )
        opened.load()
        return opened
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise InvalidImageError(f"image at position {position} cannot be decoded: {error}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright RGB: EXIF rotation applied, transparency composited onto white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def preprocess(
    image: Image.Image, resize: int, crop: int, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """(3, crop, crop) float32: short side resized to `resize` (bicubic), centre crop, normalised."""
    image = to_rgb(image)
    width, height = image.size
    scale = resize / min(width, height)
    new_size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
    image = image.resize(new_size, Image.Resampling.BICUBIC)
    left = (new_size[0] - crop) // 2
    top = (new_size[1] - crop) // 2
    image = image.crop((left, top, left + crop, top + crop))
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


class ImageEmbedder:
    """Turns images into vectors with one ONNX image model."""

    def __init__(self, folder: Path, spec: ModelSpec, threads: int | None = None, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        self.spec = spec
        self.model_name = spec.name
        self.dimension = spec.dimension
        self.batch_size = batch_size
        self.session = make_session(Path(folder) / MODEL_FILE, threads)
        self.input_name = self.session.get_inputs()[0].name
        outputs = {item.name: item for item in self.session.get_outputs()}
        wanted = spec.output_name or "image_embedding"
        output = outputs.get(wanted) or next(iter(outputs.values()))
        self.output_name = output.name
        self.token_level_output = len(output.shape) == 3

    def pixels(self, images: Sequence[ImageInput], start: int = 0) -> np.ndarray:
        """The preprocessed (n, 3, size, size) batch the model sees."""
        spec = self.spec
        return np.stack(
            [
                preprocess(open_image(image, start + offset), spec.image_resize, spec.image_size, spec.image_mean, spec.image_std)
                for offset, image in enumerate(images)
            ]
        )

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        output = self.session.run([self.output_name], {self.input_name: pixels})[0]
        if self.token_level_output:
            output = pool(output, np.ones(output.shape[:2], dtype=np.int64), self.spec.pooling)
        output = np.asarray(output, dtype=np.float32)
        return l2_normalise(output) if self.spec.normalize else output

    def iter_embed_images(self, images: Sequence[ImageInput], progress: bool = False) -> Iterator[np.ndarray]:
        """Embeddings batch by batch, in input order (only one batch of pixels in memory)."""
        from tqdm import tqdm

        with tqdm(total=len(images), unit="image", desc=f"embedding ({self.model_name})", disable=not progress) as bar:
            for start in range(0, len(images), self.batch_size):
                batch = images[start : start + self.batch_size]
                yield self._run(self.pixels(batch, start))
                bar.update(len(batch))

    def embed_images(self, images: Sequence[ImageInput], progress: bool = False) -> np.ndarray:
        """(n, dimension) float32 unit vectors, in input order."""
        images = list(images) if not isinstance(images, Sequence) else images
        parts = list(self.iter_embed_images(images, progress=progress))
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), dtype=np.float32)

    def __repr__(self) -> str:
        return f"ImageEmbedder({self.model_name!r}, dimension={self.dimension})"
