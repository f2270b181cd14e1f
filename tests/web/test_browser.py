"""The viewer in a real headless Chromium (Debian's package, WebGL through SwiftShader).

Each test opens the fixture ag_news map served by a real server and checks what a person would:
points drawn, labels that do not overlap, a datum on hover, search highlights, selection saved as a
tag that Python reads, the duplicate filter, colouring by a field, and a private map refused.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlas_assets.web.app import map_path
from resources.tags import TagStore
from tests.web.conftest import PRIVATE_TOKEN, TableMaps, wait_for

pytestmark = pytest.mark.browser

BACKGROUND = np.array([247, 247, 245])
SHOTS = Path(os.environ.get("ATLAS_WEB_SCREENSHOTS", "")) if os.environ.get("ATLAS_WEB_SCREENSHOTS") else None


def open_map(page, server, key: str = "local/news/main", query: str = "") -> None:
    page.goto(server.url + map_path(key) + query)
    wait_for(page, "window.atlasViewer && (window.atlasViewer.ready || window.atlasViewer.error)",
                           timeout=90_000)
    assert page.evaluate("window.atlasViewer.error") is None
    page.wait_for_timeout(300)  # let the fit animation and the first frames settle


def map_image(page, name: str) -> np.ndarray:
    """A screenshot of the map area as an RGB array (also saved when ATLAS_WEB_SCREENSHOTS is set)."""
    png = page.locator("#map").screenshot()
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / f"{name}.png").write_bytes(png)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def coloured_pixels(image: np.ndarray) -> int:
    """Pixels clearly different from the background and not grey (label text is dark grey)."""
    differs = np.abs(image - BACKGROUND).sum(axis=2) > 40
    saturated = image.max(axis=2) - image.min(axis=2) > 40
    return int((differs & saturated).sum())


def screen_xy(page, row: int) -> tuple[float, float]:
    x, y = page.evaluate(f"window.atlasViewer.screenPosition({row})")
    return float(x), float(y)


def isolated_row(table_map: TableMaps) -> int:
    """The row whose nearest neighbour on the map is farthest away (hovering it is unambiguous)."""
    points = table_map.public.points()
    xy = np.stack([points.x, points.y], axis=1).astype(np.float64)
    distance = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(distance, np.inf)
    centre = np.median(xy, axis=0)
    spread = np.abs(xy - centre).max(axis=1)
    candidates = np.argsort(-distance.min(axis=1))
    limit = np.quantile(spread, 0.9)  # not at the very edge, where the tooltip could be clipped
    return int(next(row for row in candidates if spread[row] < limit))


def test_the_page_draws_every_point_with_webgl_and_places_labels(page, map_server) -> None:
    open_map(page, map_server)
    assert page.evaluate("window.atlasViewer.count") == 2000
    assert page.evaluate("window.atlasViewer.nonBackgroundPixels()") > 5000
    image = map_image(page, "01-map")
    assert coloured_pixels(image) > 5000
    # distinct topic colours are really on screen (not one colour everywhere)
    colours = {tuple(c // 32) for c in image[np.abs(image - BACKGROUND).sum(axis=2) > 120][:, :3]}
    assert len(colours) >= 5
    wait_for(page, "window.atlasViewer.labelsReady === true", timeout=30_000)
    page.wait_for_timeout(200)
    labels = page.evaluate("window.atlasViewer.placedLabels")
    # enough names to read the map on open: the topics and, where they fit, their subtopics
    assert len(labels) >= 10 and {label["depth"] for label in labels} == {1, 2}
    assert page.locator("#legend li").count() == 6
    assert page.locator("#status").inner_text().startswith("2,000 points")
    assert page.console_errors == []


def assert_no_overlap(labels: list[dict]) -> None:
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            overlap = a["x0"] < b["x1"] and a["x1"] > b["x0"] and a["y0"] < b["y1"] and a["y1"] > b["y0"]
            assert not overlap, (a, b)


def test_labels_go_deeper_when_zoomed_in_and_never_overlap(page, map_server) -> None:
    open_map(page, map_server)
    wait_for(page, "window.atlasViewer.labelsReady === true", timeout=30_000)
    page.wait_for_timeout(200)
    opened = page.evaluate("window.atlasViewer.placedLabels")
    assert_no_overlap(opened)
    # zoom (the wheel, 6.5x) into the biggest topic, where it is densest
    anchor = page.evaluate("window.atlasViewer.labelAnchors[0]")
    sx, sy = page.evaluate(f"window.atlasViewer.ext.toScreen({anchor['x']}, {anchor['y']})")
    area = page.locator("#map").bounding_box()
    page.mouse.move(area["x"] + sx, area["y"] + sy)
    for _ in range(3):
        page.mouse.wheel(0, -270)
        page.wait_for_timeout(100)
    page.wait_for_timeout(900)
    assert page.evaluate("window.atlasViewer.labelDepth()") == 2
    labels = page.evaluate("window.atlasViewer.placedLabels")
    # zoomed in, the subtopics take over the names of the view
    deeper = [label for label in labels if label["depth"] == 2]
    assert len(deeper) >= 3 and len(deeper) > len(labels) / 2
    map_image(page, "02-zoomed")
    assert_no_overlap(labels)
    page.locator("#map").focus()
    page.keyboard.press("0")
    page.wait_for_timeout(900)
    assert 1 in {label["depth"] for label in page.evaluate("window.atlasViewer.placedLabels")}
    assert_no_overlap(page.evaluate("window.atlasViewer.placedLabels"))


def test_hovering_a_point_shows_its_datum(page, map_server, table_map: TableMaps) -> None:
    open_map(page, map_server)
    row = isolated_row(table_map)
    x, y = screen_xy(page, row)
    page.mouse.move(x - 30, y - 30)
    page.mouse.move(x, y)
    tooltip = page.locator("#tooltip")
    tooltip.wait_for(state="visible", timeout=10_000)
    expected_title = table_map.frame["title"].iloc[row]
    assert expected_title[:40] in tooltip.inner_text()
    assert page.evaluate("window.atlasViewer.hoveredRow") == row
    map_image(page, "03-hover")
    page.mouse.move(2, 2)
    page.wait_for_timeout(200)
    assert tooltip.is_hidden()


def test_clicking_a_point_shows_every_field_in_the_details_panel(page, map_server, table_map: TableMaps) -> None:
    open_map(page, map_server)
    row = isolated_row(table_map)
    x, y = screen_xy(page, row)
    page.mouse.click(x, y)
    details = page.locator("#details dl")
    details.wait_for(timeout=10_000)
    text = details.inner_text()
    assert str(table_map.frame["id"].iloc[row]) in text and table_map.frame["label_name"].iloc[row] in text


def test_a_text_search_highlights_the_matching_points(page, map_server, table_map: TableMaps) -> None:
    open_map(page, map_server)
    before = map_image(page, "04-before-search")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search-input"
    page.keyboard.type("Olympic")
    page.select_option("#search-mode", "text")
    page.keyboard.press("Enter")
    wait_for(page, "(window.atlasViewer.searchDone || 0) >= 1", timeout=30_000)
    expected = np.flatnonzero(table_map.frame["text"].str.contains("olympic", case=False).to_numpy())
    assert page.evaluate("Array.from(window.atlasViewer.searchRows)") == expected.tolist()
    assert f"{len(expected)} matches" in page.locator("#status").inner_text()
    page.wait_for_timeout(300)
    after = map_image(page, "05-search")
    # the matching points turn red and stand out (a label may cover a few); the rest fade
    box = page.locator("#map").bounding_box()
    reddish = 0
    for row in expected[:20]:
        x, y = screen_xy(page, int(row))
        px, py = int(round(x - box["x"])), int(round(y - box["y"]))
        window = after[py - 3:py + 4, px - 3:px + 4]
        reddish += bool(((window[..., 0] - window[..., 1] > 40) & (window[..., 0] - window[..., 2] > 20)).any())
    assert reddish >= 0.8 * min(20, len(expected))
    assert coloured_pixels(after) < coloured_pixels(before)
    assert page.locator("#results li").count() == min(15, len(expected))


def test_a_meaning_search_highlights_points_about_the_query(page, map_server, table_map: TableMaps) -> None:
    open_map(page, map_server)
    page.fill("#search-input", "crude oil prices")
    page.click("#search-button")
    wait_for(page, "(window.atlasViewer.searchDone || 0) >= 1", timeout=30_000)
    rows = page.evaluate("Array.from(window.atlasViewer.searchRows)")
    assert len(rows) == 50
    assert table_map.frame["text"].iloc[rows[:10]].str.contains("oil|crude", case=False).mean() >= 0.8


def test_a_box_selection_saved_as_a_tag_is_visible_from_python(page, map_server, table_map: TableMaps) -> None:
    open_map(page, map_server)
    page.locator("#map").focus()
    page.keyboard.press("b")
    assert page.is_checked("#tool-box")
    box = page.locator("#map").bounding_box()
    left, top = box["x"] + box["width"] * 0.30, box["y"] + box["height"] * 0.55
    right, bottom = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.75
    page.mouse.move(left, top)
    page.mouse.down()
    page.mouse.move((left + right) / 2, (top + bottom) / 2, steps=4)
    page.mouse.move(right, bottom, steps=4)
    map_image(page, "06-box-drawing")
    page.mouse.up()
    selected = page.evaluate("Array.from(window.atlasViewer.selection)")
    # exactly the points whose screen positions fall inside the box
    positions = page.evaluate("Array.from({length: window.atlasViewer.count}, (_, i) => window.atlasViewer.screenPosition(i))")
    inside = [i for i, (x, y) in enumerate(positions) if left <= x <= right and top <= y <= bottom]
    assert len(selected) > 10
    assert set(selected) == set(inside) or len(set(selected) ^ set(inside)) <= 2  # edge rounding
    assert f"{len(selected):,} point" in page.locator("#selection-count").inner_text()
    page.fill("#tag-name", "lassoed in the browser")
    page.click("#tag-save")
    wait_for(page, "window.atlasViewer.lastTagSaved", timeout=10_000)
    tagged = TagStore(table_map.index_dir).get_datums_in_tag("lassoed in the browser")
    assert sorted(tagged) == sorted(table_map.frame["id"].iloc[selected].astype(str))
    page.locator("#tag-list li", has_text="lassoed in the browser").wait_for(timeout=10_000)
    map_image(page, "07-tagged")
    # the same selection taken out again empties the tag, in Python too
    page.evaluate("window.atlasViewer.lastTagSaved = null")
    page.click("#tag-remove")
    wait_for(page, "window.atlasViewer.lastTagSaved", timeout=10_000)
    assert TagStore(table_map.index_dir).get_datums_in_tag("lassoed in the browser") == []


def test_clicking_a_legend_entry_highlights_that_topic(page, map_server, table_map: TableMaps) -> None:
    open_map(page, map_server)
    entry = page.locator("#legend .legend-entry").nth(1)
    entry.click()
    assert entry.get_attribute("aria-pressed") == "true"
    codes = table_map.public.points().topic_codes[0]
    expected = int((codes == 1).sum())
    assert f"{expected:,} points" in page.locator("#status").inner_text()
    map_image(page, "11-legend-highlight")
    entry.click()
    assert entry.get_attribute("aria-pressed") == "false"


def test_a_lasso_selection_follows_the_drawn_outline(page, map_server) -> None:
    open_map(page, map_server)
    page.check("#tool-lasso")
    box = page.locator("#map").bounding_box()
    cx, cy, r = box["x"] + box["width"] * 0.38, box["y"] + box["height"] * 0.65, box["height"] * 0.12
    page.mouse.move(cx + r, cy)
    page.mouse.down()
    for angle in np.linspace(0, 2 * np.pi, 40)[1:]:
        page.mouse.move(cx + r * np.cos(angle), cy + r * np.sin(angle))
    page.mouse.up()
    selected = page.evaluate("Array.from(window.atlasViewer.selection)")
    positions = page.evaluate("Array.from({length: window.atlasViewer.count}, (_, i) => window.atlasViewer.screenPosition(i))")
    distance = np.hypot(np.array([p[0] for p in positions]) - cx, np.array([p[1] for p in positions]) - cy)
    assert set(np.flatnonzero(distance < 0.95 * r)) <= set(selected)
    assert set(selected) <= set(np.flatnonzero(distance < 1.05 * r))


def test_duplicates_only_hides_every_other_point(page, map_server, table_map: TableMaps) -> None:
    open_map(page, map_server)
    all_pixels = page.evaluate("window.atlasViewer.nonBackgroundPixels()")
    page.check("#duplicates-only")
    page.wait_for_timeout(200)
    duplicate_pixels = page.evaluate("window.atlasViewer.nonBackgroundPixels()")
    map_image(page, "08-duplicates")
    share = (table_map.public.points().duplicate_class > 0).mean()
    assert 0 < duplicate_pixels < all_pixels * min(0.9, share * 3)


def test_colouring_by_a_field_changes_the_legend_and_the_colours(page, map_server) -> None:
    open_map(page, map_server)
    before = map_image(page, "09-topics")
    page.select_option("#color-by", "label_name")
    wait_for(page, "document.querySelectorAll('#legend li').length === 4", timeout=10_000)
    assert set(page.locator("#legend .name").all_inner_texts()) == {"World", "Sports", "Business", "Sci/Tech"}
    page.wait_for_timeout(200)
    after = map_image(page, "10-by-label")
    assert np.abs(after - before).sum() > 0
    page.select_option("#color-by", "label")
    wait_for(page, "document.querySelector('#legend .ramp') !== null", timeout=10_000)


def test_a_private_map_refuses_the_browser_without_its_token(page, map_server) -> None:
    response = page.goto(map_server.url + map_path("local/secret/main"))
    assert response is not None and response.status == 401
    assert "local/secret" not in page.content()
    open_map(page, map_server, "local/secret/main", f"?token={PRIVATE_TOKEN}")
    assert page.evaluate("window.atlasViewer.count") == 2000
    assert page.evaluate("window.atlasViewer.nonBackgroundPixels()") > 5000


def test_the_controls_have_labels_for_screen_readers(page, map_server) -> None:
    open_map(page, map_server)
    unlabelled = page.evaluate(
        """() => Array.from(document.querySelectorAll('input, select, button')).filter((el) => {
            const label = el.labels && el.labels.length ? el.labels[0].innerText.trim() : '';
            return !(label || el.getAttribute('aria-label') || el.innerText.trim());
        }).map((el) => el.id || el.outerHTML)"""
    )
    assert unlabelled == []
    assert page.get_attribute("#map", "aria-label")
