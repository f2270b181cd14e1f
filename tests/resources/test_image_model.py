"""The image embedder: a real ImageNet network, Pillow preprocessing, and a quality check on digits."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images

from atlas_assets.errors import InvalidImageError, ModelError
from benchmarks.embeddings import neighbour_label_agreement, render_digit
from resources.embedder import load_image_embedder, load_text_embedder
from resources.image_model import ImageEmbedder, preprocess, to_rgb
from resources.image_model_builder import LOGITS_OUTPUT, read_legacy_torch_state_dict
from resources.model_store import install_model

PALACE, DAISY = 698, 985  # ImageNet class indices


@pytest.fixture(scope="module")
def embedder() -> ImageEmbedder:
    return load_image_embedder()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_default_image_model_is_efficientnet_lite0(embedder: ImageEmbedder) -> None:
    assert (embedder.model_name, embedder.dimension) == ("efficientnet-lite0", 1216)
    assert load_image_embedder("NomicEmbed") is embedder  # the Atlas default name means "the default"
    with pytest.raises(ModelError, match="embeds images, not texts"):
        load_text_embedder("efficientnet-lite0")


def test_the_port_classifies_real_photographs(embedder: ImageEmbedder) -> None:
    """scikit-learn's two bundled photos: a Chinese palace and a daisy-like flower."""
    photos = [Image.fromarray(array) for array in load_sample_images().images]
    logits = embedder.session.run([LOGITS_OUTPUT], {embedder.input_name: embedder.pixels(photos)})[0]
    assert logits[0].argmax() == PALACE
    assert logits[1].argmax() == DAISY


def test_bytes_paths_and_pil_images_give_the_same_unit_vectors(embedder: ImageEmbedder, tmp_path: Path) -> None:
    photo = Image.fromarray(load_sample_images().images[0])
    path = tmp_path / "photo.jpg"
    photo.save(path, quality=95)
    vectors = embedder.embed_images([path, str(path), path.read_bytes(), Image.open(path)])
    assert vectors.shape == (4, 1216) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors - vectors[0]).max() < 1e-6


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    wide = Image.new("RGB", (40, 20), "red")
    wide.paste(Image.new("RGB", (20, 20), "blue"), (20, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    path = tmp_path / "sideways.jpg"
    wide.save(path, exif=exif.tobytes(), quality=100)
    upright = to_rgb(Image.open(path))
    assert upright.size == (20, 40)
    top, bottom = np.asarray(upright)[2, 10], np.asarray(upright)[37, 10]
    assert top[0] > 200 and bottom[2] > 200  # red on top, blue below after the rotation


def test_transparency_becomes_white_and_greyscale_becomes_rgb() -> None:
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert np.asarray(to_rgb(clear)).min() == 255
    grey = to_rgb(Image.new("L", (8, 8), 100))
    assert grey.mode == "RGB" and np.asarray(grey).tolist()[0][0] == [100, 100, 100]


def test_preprocessing_resizes_the_short_side_and_crops_the_centre() -> None:
    tall = Image.new("RGB", (100, 300), (255, 255, 255))
    tall.paste(Image.new("RGB", (100, 40), (0, 0, 0)), (0, 130))  # a black band across the middle
    pixels = preprocess(tall, resize=256, crop=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert pixels.shape == (3, 224, 224) and pixels.dtype == np.float32
    assert pixels[:, 112, 112].tolist() == [-1.0, -1.0, -1.0]  # centre is the black band
    assert pixels.max() == pytest.approx(1.0, abs=1e-6)  # white above and below the band survives the crop


def test_undecodable_image_names_its_position(embedder: ImageEmbedder) -> None:
    good = _png(Image.new("RGB", (32, 32), "green"))
    with pytest.raises(InvalidImageError, match="position 1"):
        embedder.embed_images([good, b"not an image"])
    with pytest.raises(InvalidImageError, match="position 0"):
        embedder.embed_images([12345])  # type: ignore[list-item]
    assert embedder.embed_images([]).shape == (0, 1216)


def test_weights_reader_refuses_code_in_a_torch_file(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.pth"
    with open(hostile, "wb") as handle:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        handle.write(b"cos\nsystem\n(S'echo owned'\ntR.")  # a pickle calling os.system
    with pytest.raises(pickle.UnpicklingError, match="refusing to load os.system"):
        read_legacy_torch_state_dict(hostile)


def test_weights_reader_reads_the_real_state_dict() -> None:
    weights = read_legacy_torch_state_dict(install_model("efficientnet-lite0") / "weights" / "model.pth")
    assert weights["_conv_stem.weight"].shape == (32, 3, 3, 3) and weights["_fc.weight"].shape == (1000, 1280)
    assert len([name for name in weights if name.endswith("_depthwise_conv.weight")]) == 16


@pytest.mark.slow
def test_digit_images_neighbour_by_label_better_than_raw_pixels(embedder: ImageEmbedder) -> None:
    digits = load_digits()
    vectors = embedder.embed_images([render_digit(image) for image in digits.images])
    pixels = digits.images.reshape(len(digits.images), -1)
    on_pixels = max(neighbour_label_agreement(pixels, digits.target, metric=metric) for metric in ("euclidean", "cosine"))
    on_embeddings = neighbour_label_agreement(vectors, digits.target)
    assert on_pixels > 0.96  # raw pixels are a strong baseline on these digits
    assert on_embeddings > on_pixels + 0.005, (on_embeddings, on_pixels)
