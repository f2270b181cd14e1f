"""The map server on maps built by the real pipeline (`AtlasDataset.add_data` + `create_index`).

The server finds maps under ATLAS_HOME exactly as `atlas serve` does (`HomeRegistry`), the page is
opened at `AtlasProjection.map_link`, and a headless Chromium checks what a person would see: points
drawn, a datum on hover, search by meaning, a box selection that becomes a tag in `map.tags`, and a
private map that refuses a request without its token.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from tests.web.conftest import wait_for
from atlas_assets.web.app import LOOPBACK_HOSTS, BackgroundServer, create_app
from atlas_assets.web.discovery import HomeRegistry
from atlas_assets.web.auth import dataset_token
from tests.conftest import news_frame
from tests.web.test_browser import coloured_pixels, map_image, screen_xy


# Dagster's in-process runs (building the fixture maps) warn about an event loop when Playwright's
# sync API already runs one in this thread; harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:coroutine 'BaseEventLoop.shutdown_asyncgens' was never awaited")


@pytest.fixture
def real_server(news_map) -> Iterator[BackgroundServer]:
    """`atlas serve`'s app over the session's real AG News map (ATLAS_HOME set by `news_map`)."""
    server = BackgroundServer(create_app(HomeRegistry(), allowed_hosts=LOOPBACK_HOSTS))
    yield server
    server.stop()


def open_real_map(page, server: BackgroundServer, link: str) -> None:
    page.goto(server.url + urlparse(link).path + (f"?{urlparse(link).query}" if urlparse(link).query else ""))
    wait_for(page, "window.atlasViewer && (window.atlasViewer.ready || window.atlasViewer.error)",
                           timeout=90_000)
    assert page.evaluate("window.atlasViewer.error") is None
    page.wait_for_timeout(300)


def test_the_registry_finds_the_pipeline_map_under_its_map_link(news_map) -> None:
    sources = HomeRegistry().sources()
    keys = [source.key for source in sources]
    assert urlparse(news_map.map_link).path == "/maps/" + keys[0] and len(keys) == 1
    source = sources[0]
    projected = news_map.embeddings.projected
    points = source.points()
    assert len(points) == len(projected) == 601
    np.testing.assert_allclose(points.x, projected["x"].to_numpy(np.float32))
    depth1 = news_map.topics.df["topic_depth_1"].value_counts()
    assert {t.label: t.size for t in source.topics() if t.depth == 1} == depth1.to_dict()
    # the planted copy of row 0 is flagged a duplicate on the map
    copy_row = int(np.flatnonzero(projected["id"].to_numpy() == "copy-of-0")[0])
    assert points.duplicate_class[copy_row] > 0


@pytest.mark.browser
def test_a_real_map_is_drawn_and_hover_shows_its_datum(page, real_server: BackgroundServer, news_map) -> None:
    open_real_map(page, real_server, news_map.map_link)
    assert page.evaluate("window.atlasViewer.count") == 601
    image = map_image(page, "20-real-map")
    assert coloured_pixels(image) > 2000
    assert len(page.evaluate("window.atlasViewer.placedLabels")) >= 2
    projected = news_map.embeddings.projected
    xy = projected[["x", "y"]].to_numpy()
    gaps = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) + np.eye(len(xy)) * 1e9
    row = int(np.argsort(-gaps.min(axis=1))[len(xy) // 20])  # well separated, not the farthest outlier
    x, y = screen_xy(page, row)
    page.mouse.move(x - 20, y - 20)
    page.mouse.move(x, y)
    page.locator("#tooltip").wait_for(state="visible", timeout=15_000)
    text = news_map.data.df.set_index("id").loc[projected["id"].iloc[row], "text"]
    assert text[:40] in page.locator("#tooltip").inner_text()
    map_image(page, "21-real-hover")


@pytest.mark.browser
def test_a_meaning_search_on_a_real_map_highlights_related_news(page, real_server, news_map) -> None:
    open_real_map(page, real_server, news_map.map_link)
    page.fill("#search-input", "stock markets and oil prices")
    page.select_option("#search-mode", "meaning")
    page.press("#search-input", "Enter")
    wait_for(page, "(window.atlasViewer.searchDone || 0) >= 1", timeout=120_000)
    rows = page.evaluate("Array.from(window.atlasViewer.searchRows)")
    assert len(rows) == 50
    ids = news_map.embeddings.projected["id"].iloc[rows[:10]]
    categories = news_map.data.df.set_index("id").loc[ids, "category"]
    assert (categories == "Business").mean() >= 0.6
    map_image(page, "22-real-search")


@pytest.mark.browser
def test_a_selection_on_a_real_map_becomes_a_tag_in_map_tags(page, real_server, news_map) -> None:
    open_real_map(page, real_server, news_map.map_link)
    page.check("#tool-box")
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=6)
    page.mouse.up()
    rows = page.evaluate("Array.from(window.atlasViewer.selection)")
    assert len(rows) > 5
    tag = f"picked-{os.getpid()}-{time.monotonic_ns()}"
    page.fill("#tag-name", tag)
    page.click("#tag-save")
    wait_for(page, "window.atlasViewer.lastTagSaved", timeout=15_000)
    expected = sorted(news_map.embeddings.projected["id"].iloc[rows])
    assert tag in news_map.tags.get_tags()
    assert sorted(news_map.tags.get_datums_in_tag(tag)) == expected
    frame = news_map.tags.df
    assert sorted(frame.loc[frame[tag], "id"]) == expected
    # and a tag made in Python shows up in the page's tag list
    python_tag = tag + "-python"
    news_map.tags.add(["copy-of-0"], python_tag)
    page.reload()
    page.locator("#tag-list li", has_text=python_tag).wait_for(timeout=30_000)


@pytest.fixture(scope="session")
def private_map_home(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A small private dataset (is_public=False) with one map, built by the real pipeline."""
    home = tmp_path_factory.mktemp("private_map_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATLAS_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        from atlas_assets.dataset import AtlasDataset

        dataset = AtlasDataset("tests/private-news", unique_id_field="id", is_public=False)
        dataset.add_data(news_frame(shared_data, start=1000, rows=120))
        dataset.create_index(name="news", indexed_field="text")
    return home


@pytest.mark.browser
@pytest.mark.slow
def test_a_private_real_map_refuses_without_its_token(private_map_home: Path, page, monkeypatch) -> None:
    monkeypatch.setenv("ATLAS_HOME", str(private_map_home))
    monkeypatch.setenv("DAGSTER_HOME", str(private_map_home / "dagster"))
    from atlas_assets.dataset import AtlasDataset

    projection = AtlasDataset("tests/private-news").get_map("news")
    token = HomeRegistry().get(urlparse(projection.map_link).path.removeprefix("/maps/")).access_token()
    assert token and len(token) >= 40
    server = BackgroundServer(create_app(HomeRegistry(), allowed_hosts=LOOPBACK_HOSTS))
    try:
        path = urlparse(projection.map_link).path
        response = page.goto(server.url + path)
        assert response is not None and response.status == 401
        assert "private-news" not in page.content()
        api = server.url + path.replace("/maps/", "/api/maps/", 1)
        for route in ("/meta", "/points.bin", "/datum/0"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(api + route, timeout=30)
            assert refused.value.code == 401
        assert b"private-news" not in urllib.request.urlopen(server.url + "/", timeout=30).read()
        open_real_map(page, server, projection.map_link + f"?token={token}")
        assert page.evaluate("window.atlasViewer.count") == 120
        assert page.evaluate("window.atlasViewer.nonBackgroundPixels()") > 500
    finally:
        server.stop()


def test_atlas_serve_binds_loopback_and_prints_each_map_link(news_map, tmp_path: Path) -> None:
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "atlas_assets.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "map server on" in line or not line:
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in output
        assert urlparse(news_map.map_link).path in output
        for _ in range(100):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                break
            except OSError:
                time.sleep(0.2)
        assert b"tests/ag-news" in page
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def image_map_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image dataset (80 of sklearn's bundled digit scans as blobs) with one map."""
    from PIL import Image
    from sklearn.datasets import load_digits

    home = tmp_path_factory.mktemp("image_map_home")
    digits = load_digits()
    images = [Image.fromarray((255 - digits.images[i] * 16).astype(np.uint8)).resize((32, 32)).convert("RGB")
              for i in range(80)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATLAS_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        import pandas as pd

        from atlas_assets.dataset import AtlasDataset

        dataset = AtlasDataset("tests/digits", unique_id_field="id")
        dataset.add_data(pd.DataFrame({"id": [f"d{i}" for i in range(80)], "digit": digits.target[:80].astype(str)}),
                         blobs=images)
        dataset.create_index(name="digits", topic_model={"topic_label_field": "digit"})
    return home


@pytest.mark.browser
@pytest.mark.slow
def test_hovering_a_real_image_map_shows_the_stored_image(image_map_home: Path, page, monkeypatch) -> None:
    monkeypatch.setenv("ATLAS_HOME", str(image_map_home))
    monkeypatch.setenv("DAGSTER_HOME", str(image_map_home / "dagster"))
    from atlas_assets.dataset import AtlasDataset

    projection = AtlasDataset("tests/digits").get_map("digits")
    server = BackgroundServer(create_app(HomeRegistry(), allowed_hosts=LOOPBACK_HOSTS))
    try:
        open_real_map(page, server, projection.map_link)
        assert page.evaluate("window.atlasViewer.meta.modality") == "image"
        xy = projection.embeddings.projected[["x", "y"]].to_numpy()
        gaps = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) + np.eye(len(xy)) * 1e9
        row = int(np.argsort(-gaps.min(axis=1))[5])
        x, y = screen_xy(page, row)
        page.mouse.move(x - 20, y - 20)
        page.mouse.move(x, y)
        page.locator("#tooltip img").wait_for(state="visible", timeout=15_000)
        wait_for(page, "document.querySelector('#tooltip img').naturalWidth === 32", timeout=15_000)
        map_image(page, "23-real-image-hover")
    finally:
        server.stop()


@pytest.mark.slow
def test_atlas_token_prints_the_private_datasets_token(private_map_home: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ATLAS_HOME", str(private_map_home))
    monkeypatch.setenv("DAGSTER_HOME", str(private_map_home / "dagster"))
    from atlas_assets.cli import main
    from atlas_assets.dataset import AtlasDataset

    assert main(["token", "tests/private-news"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == dataset_token(AtlasDataset("tests/private-news").id)
    assert main(["token", "tests/no-such-dataset"]) == 2
    assert "no dataset tests/no-such-dataset" in capsys.readouterr().err
