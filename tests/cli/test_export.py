"""`atlas_assets.cli.export`: a map as Parquet (its whole state), as a picture, and as one HTML file that
works offline (checked in a real headless Chromium opened on the file, no server anywhere)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from atlas_assets.errors import InvalidOptionError
from atlas_assets.cli.export import export_html, export_map, export_parquet, export_png, render_png


def test_parquet_holds_every_live_row_with_fields_place_topics_duplicates_and_tags(news_map, tmp_path):
    news_map.tags.add(["10", "11"], "checked")
    try:
        path = export_parquet(news_map, tmp_path / "map.parquet")
        table = pq.read_table(path)
    finally:
        news_map.tags.remove(["10", "11"], "checked")
    frame = table.to_pandas()
    assert len(frame) == 601  # 600 AG News items + the planted copy
    assert {"id", "text", "category", "x", "y", "topic_depth_1", "duplicate_class", "cluster_id", "tag:checked"} <= set(frame.columns)
    assert frame["id"].is_unique and np.isfinite(frame[["x", "y"]].to_numpy()).all()
    assert frame["topic_depth_1"].notna().all()
    assert set(frame.loc[frame["tag:checked"], "id"]) == {"10", "11"}
    # the planted copy and its original are one duplicate cluster
    pair = frame.set_index("id").loc[["0", "copy-of-0"]]
    assert pair["cluster_id"].nunique() == 1 and set(pair["duplicate_class"]) == {"retention candidate", "deletion candidate"}
    metadata = table.schema.metadata
    assert metadata[b"atlas.dataset"] == b"tests/ag-news" and metadata[b"atlas.map_name"] == b"news"


def test_png_is_the_map_coloured_by_topic(news_map, tmp_path):
    path = export_png(news_map, tmp_path / "map.png", size=600)
    image = Image.open(io.BytesIO(path.read_bytes()))
    assert image.format == "PNG" and image.size == (600, 600)
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    background = np.array([247, 247, 245])
    drawn = np.abs(pixels - background).sum(axis=1) > 30
    assert 0.01 < drawn.mean() < 0.5  # points are drawn, the map is not a blot
    distinct = {tuple(p) for p in pixels[drawn][::7]}
    assert len(distinct) > 5  # several topic colours, labels and their outlines


def test_render_refuses_a_picture_too_small_to_read():
    with pytest.raises(InvalidOptionError, match="at least 64 pixels"):
        render_png(np.zeros((3, 2)), size=10)


def test_unknown_format_is_an_error_naming_the_formats(news_map, tmp_path):
    with pytest.raises(InvalidOptionError, match="parquet, png, html"):
        export_map(news_map, "svg", tmp_path / "map.svg")


def test_html_is_one_file_with_nothing_fetched_from_outside(news_map, tmp_path):
    path = export_html(news_map, tmp_path / "map.html")
    page = path.read_text()
    assert not re.search(r'(src|href)="/', page)  # no server paths: the viewer and its style are inline
    assert "http://" not in page.split("window.__ATLAS_EXPORT__")[0]
    from atlas_assets.web.app import STATIC_DIR

    viewer_files = (STATIC_DIR / "index.html").read_text().count('<script src="/static/')
    assert viewer_files >= 5  # viewer, density, labels, charts, table
    assert page.count("<script>") == viewer_files + 2 and "window.__ATLAS_EXPORT__" in page  # + data + shim


@pytest.mark.browser
def test_html_opens_offline_in_a_browser_with_points_fields_details_and_text_search(news_map, tmp_path):
    from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: run scripts/install-system-deps.sh (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    path = export_html(news_map, tmp_path / "nested" / "map.html")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 800}, offline=True)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(path.as_uri())
            page.wait_for_function("window.atlasViewer && window.atlasViewer.ready", timeout=60_000)
            assert page.evaluate("window.atlasViewer.count") == 601
            assert page.evaluate("window.atlasViewer.meta.title") == "tests/ag-news · news"
            assert page.evaluate("window.atlasViewer.nonBackgroundPixels()") > 500
            # colouring by a dataset field and by topic works from the inlined columns
            options = page.eval_on_selector_all("#color-by option", "os => os.map(o => o.value)")
            assert "category" in options and "topic_depth_1" in options
            page.select_option("#color-by", "category")
            page.wait_for_function("document.querySelectorAll('#legend li').length >= 4")
            legend = page.inner_text("#legend")
            assert "Sports" in legend and "Business" in legend
            # text search answers from the page itself
            page.fill("#search-input", "Olympic")
            page.click("#search-button")
            page.wait_for_function("document.querySelectorAll('#results li').length > 0")
            assert "match" in page.inner_text("#status")
            first = page.inner_text("#results li")
            assert "olympic" in first.lower()
            assert errors == []
            assert all(url.startswith("file://") for url in requests)  # nothing left the machine
            context.close()
        finally:
            browser.close()
