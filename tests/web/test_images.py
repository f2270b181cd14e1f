"""Image maps: hovering a point shows its thumbnail, fetched lazily from the image route.

The map holds sklearn's bundled handwritten digits (1,797 real 8x8 scans) as PNG blobs, laid out by
PCA, with the digit as topic.
"""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from tests.web.conftest import wait_for
from atlas_assets.web.app import BackgroundServer, create_app, map_path
from atlas_assets.web.source import FrameMapSource, MapTables


def _png(pixels: np.ndarray) -> bytes:
    image = Image.fromarray((255 - pixels * 16).clip(0, 255).astype(np.uint8)).resize((64, 64), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits() -> tuple[FrameMapSource, np.ndarray]:
    data = load_digits()
    ids = [f"digit-{i}" for i in range(len(data.target))]
    xy = PCA(n_components=2, random_state=0).fit_transform(data.data)
    blobs = {ids[i]: _png(data.images[i]) for i in range(len(ids))}
    tables = MapTables(
        projected=pd.DataFrame({"id": ids, "x": xy[:, 0], "y": xy[:, 1]}),
        data=pd.DataFrame({"id": ids, "digit": data.target.astype(str)}),
        topics=pd.DataFrame({"id": ids, "topic_depth_1": [f"digit {d}" for d in data.target]}),
    )
    source = FrameMapSource("local/digits/main", "digits", tables, modality="image",
                            image_loader=lambda datum_id, record: (blobs[datum_id], "image/png"))
    return source, data.images


@pytest.fixture
def digits_server(digits) -> Iterator[BackgroundServer]:
    server = BackgroundServer(create_app([digits[0]]))
    yield server
    server.stop()


def test_the_image_route_returns_the_datum_image(digits_server, digits) -> None:
    with urllib.request.urlopen(digits_server.url + "/api/maps/local/digits/main/image/5", timeout=30) as response:
        assert response.headers["content-type"] == "image/png"
        image = np.asarray(Image.open(io.BytesIO(response.read())).convert("L"))
    expected = (255 - digits[1][5] * 16).clip(0, 255)
    assert image.shape == (64, 64) and (image[::8, ::8] == expected).all()


@pytest.mark.browser
def test_hovering_an_image_point_shows_its_thumbnail(page, digits_server, digits) -> None:
    page.goto(digits_server.url + map_path("local/digits/main"))
    wait_for(page, "window.atlasViewer && window.atlasViewer.ready", timeout=60_000)
    page.wait_for_timeout(300)
    points = digits[0].points()
    xy = np.stack([points.x, points.y], 1).astype(float)
    gaps = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) + np.eye(len(xy)) * 1e9
    row = int(np.argsort(-gaps.min(axis=1))[20])
    x, y = page.evaluate(f"window.atlasViewer.screenPosition({row})")
    page.mouse.move(x - 15, y - 15)
    page.mouse.move(x, y)
    thumbnail = page.locator("#tooltip img")
    thumbnail.wait_for(state="visible", timeout=15_000)
    wait_for(page, "document.querySelector('#tooltip img').naturalWidth === 64", timeout=15_000)
    assert thumbnail.get_attribute("alt") == f"image of datum digit-{row}"
    assert f"digit {load_digits().target[row]}" in page.locator("#tooltip").inner_text()
