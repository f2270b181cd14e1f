"""The fields beside the map, in a real headless Chromium, and the routes behind them.

The fixture is the ag_news test map with two more fields: `published` (a date, spread over 90 days)
and `words` (a count). Checked as a person would: a chart per field beside the map, a click on a
bar filtering the map (the page's count of drawn points and the pixels both drop), a brushed time
range counting exactly what `get_topic_density`'s rule counts (start <= t <= end), a box selection
shown in every chart and listed in the table, the table sorted and exported to CSV, the labels'
boxes apart and their anchors where their topics are densest, and the density layer drawn.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import urllib.request
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from atlas_assets.web.app import BackgroundServer, create_app, map_path
from atlas_assets.web.source import FrameMapSource
from tests.web.conftest import wait_for
from tests.web.test_browser import map_image

pytestmark = pytest.mark.browser
KEY = "local/dated/main"
API = "/api/maps/" + KEY


@pytest.fixture(scope="module")
def dated(news_tables) -> tuple[FrameMapSource, pd.DataFrame]:
    tables, vector_search, _ = news_tables
    data = tables.data.copy()
    rng = np.random.default_rng(0)
    data["published"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 90 * 86400, len(data)), unit="s")
    data["words"] = data["text"].str.split().str.len().astype(np.int32)
    source = FrameMapSource(KEY, "dated news", dataclasses.replace(tables, data=data), vector_search=vector_search)
    return source, data


@pytest.fixture(scope="module")
def dated_server(dated) -> Iterator[BackgroundServer]:
    server = BackgroundServer(create_app([dated[0]]))
    yield server
    server.stop()


def post(server: BackgroundServer, path: str, rows: list[int] | None) -> bytes:
    body = np.asarray(rows or [], dtype="<u4").tobytes()
    request = urllib.request.Request(server.url + API + path, data=body,
                                     headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def open_dated(page, server) -> None:
    page.goto(server.url + map_path(KEY))
    wait_for(page, "window.atlasViewer && (window.atlasViewer.ready || window.atlasViewer.error)", timeout=90_000)
    assert page.evaluate("window.atlasViewer.error") is None
    wait_for(page, "window.atlasViewer.charts && window.atlasViewer.charts.ready && window.atlasViewer.labelsReady",
             timeout=60_000)
    wait_for(page, "(window.atlasViewer.table.loaded || 0) >= 1", timeout=30_000)
    page.wait_for_timeout(300)


def box(page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, selector
    return found


# ---- the routes ---------------------------------------------------------------------------------------
def test_the_routes_give_dates_exactly_and_count_a_time_range_as_get_topic_density(dated_server, dated) -> None:
    source, data = dated
    with urllib.request.urlopen(dated_server.url + API + "/fields.json") as response:
        fields = {f["name"]: f for f in json.loads(response.read())["fields"]}
    assert fields["published"]["temporal"] and fields["published"]["kind"] == "numeric"
    assert not fields["words"]["temporal"] and fields["label_name"]["kind"] == "categorical"
    with urllib.request.urlopen(dated_server.url + API + "/time/published") as response:
        times = np.frombuffer(response.read(), "<f8")
    expected_ms = data["published"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    np.testing.assert_array_equal(times.astype(np.int64), expected_ms)
    # a start or an end exactly on a row's time includes that row (get_topic_density's inclusive end)
    start, end = int(np.sort(expected_ms)[100]), int(np.sort(expected_ms)[900])
    url = f"{dated_server.url}{API}/topic_density?field=published&start={start}&end={end}&depth=1"
    with urllib.request.urlopen(url) as response:
        answer = json.loads(response.read())
    inside = (expected_ms >= start) & (expected_ms <= end)
    labels = np.array([t.label for t in source.topics() if t.depth == 1], dtype=object)[source.points().topic_codes[0]]
    counts = pd.Series(labels[inside]).value_counts()
    assert {t["topic"]: t["count"] for t in answer["topics"]} == {k: int(v) for k, v in counts.items()}
    assert sum(t["count"] for t in answer["topics"]) == 801
    iso = f"{dated_server.url}{API}/topic_density?field=published&start=2024-01-01&end=2024-01-31T23:59:59.999&depth=1"
    with urllib.request.urlopen(iso) as response:
        january = sum(t["count"] for t in json.loads(response.read())["topics"])
    assert january == int((data["published"] < "2024-02-01").sum())
    # without a depth, every depth counts (a row once per depth), as get_topic_density does
    every = f"{dated_server.url}{API}/topic_density?field=published&start={start}&end={end}"
    with urllib.request.urlopen(every) as response:
        assert sum(t["count"] for t in json.loads(response.read())["topics"]) == 2 * 801


def test_rows_come_sorted_and_paged_and_as_csv(dated_server, dated) -> None:
    _, data = dated
    rows = [5, 17, 3, 1000, 42, 7]
    page = json.loads(post(dated_server, "/rows?sort=words&order=desc&limit=4", rows))
    assert page["total"] == 6 and len(page["rows"]) == 4
    words = page["columns"].index("words")
    expected = data["words"].iloc[rows].sort_values(ascending=False, kind="stable")
    assert [r[words] for r in page["rows"]] == expected.tolist()[:4]
    everything = json.loads(post(dated_server, "/rows?scope=all&limit=3&offset=10", None))
    assert everything["total"] == len(data) and [r[0] for r in everything["rows"]] == [10, 11, 12]
    text = post(dated_server, "/rows.csv?sort=published", rows).decode()
    table = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["row"]) for r in table] == data["published"].iloc[rows].sort_values().index.tolist()
    assert table[0]["text"] == data["text"].iloc[int(table[0]["row"])]  # full text, not cut


# ---- the page -----------------------------------------------------------------------------------------
def test_a_chart_per_field_stands_beside_the_map(page, dated_server) -> None:
    open_dated(page, dated_server)
    fields = page.locator("#charts .chart").evaluate_all("(els) => els.map((e) => e.dataset.field)")
    assert fields[0] == "topic_depth_1" and fields[-1] == "duplicate_class"
    assert {"published", "label_name", "label", "words"} <= set(fields)
    assert "text" not in fields and "title" not in fields
    assert page.locator(".chart-temporal svg path.shown").count() == 1
    assert page.locator(".chart-numeric svg rect.shown").count() >= 5
    the_map, panel = box(page, "#map"), box(page, "#charts-panel")
    assert panel["x"] >= the_map["x"] + the_map["width"] - 1  # right of the map, not over it
    for a, b in itertools.pairwise(fields):  # stacked, none over another
        first, second = box(page, f'.chart[data-field="{a}"]'), box(page, f'.chart[data-field="{b}"]')
        assert second["y"] >= first["y"] + first["height"] - 1
    map_image(page, "20-charts-map")
    chart = np.asarray(Image.open(io.BytesIO(page.locator("#charts-panel").screenshot())).convert("RGB")).astype(int)
    blue = (chart[..., 2] - chart[..., 0] > 60)  # the bars are drawn
    assert blue.sum() > 2000
    assert page.console_errors == []


def test_clicking_a_bar_filters_the_map_and_the_other_charts(page, dated_server, dated) -> None:
    _, data = dated
    open_dated(page, dated_server)
    before_pixels = page.evaluate("window.atlasViewer.nonBackgroundPixels()")
    assert page.evaluate("window.atlasViewer.visibleCount") == len(data)
    page.locator('.chart[data-field="label_name"] .bar', has_text="Sports").click()
    sports = int((data["label_name"] == "Sports").sum())
    wait_for(page, f"window.atlasViewer.visibleCount === {sports}", timeout=10_000)
    assert page.locator('.chart[data-field="label_name"] .bar', has_text="Sports").get_attribute("aria-pressed") == "true"
    after_pixels = page.evaluate("window.atlasViewer.nonBackgroundPixels()")
    assert after_pixels < 0.8 * before_pixels
    # the topic chart now counts the sports rows only
    shown = page.evaluate("""Array.from(window.atlasViewer.charts.list.find((c) => c.name === 'topic_depth_1').shown)""")
    assert sum(shown) == sports
    assert f"{sports:,} of 2,000 points" in page.locator("#filter-status").inner_text()
    wait_for(page, f"window.atlasViewer.table.total === {sports}", timeout=10_000)
    assert "passing the filters" in page.locator("#table-status").inner_text()
    map_image(page, "21-filtered")
    page.click("#filters-clear")
    wait_for(page, f"window.atlasViewer.visibleCount === {len(data)}", timeout=10_000)


def test_a_brushed_time_range_counts_what_get_topic_density_counts(page, dated_server, dated) -> None:
    _, data = dated
    open_dated(page, dated_server)
    svg = box(page, '.chart[data-field="published"] svg')
    y = svg["y"] + svg["height"] / 2
    page.mouse.move(svg["x"] + svg["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(svg["x"] + svg["width"] * 0.5, y, steps=5)
    page.mouse.move(svg["x"] + svg["width"] * 0.6, y, steps=5)
    page.mouse.up()
    wait_for(page, "window.atlasViewer.timeRange !== null && window.atlasViewer.timeRange !== undefined", timeout=10_000)
    page.wait_for_timeout(300)
    chosen = page.evaluate("window.atlasViewer.timeRange")
    start, end = chosen["start"], chosen["end"]
    ms = data["published"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    expected = int(((ms >= start) & (ms <= end)).sum())
    assert 0 < expected < len(data)
    assert page.evaluate("window.atlasViewer.visibleCount") == expected
    url = f"{dated_server.url}{API}/topic_density?field=published&start={start}&end={end}&depth=1"
    with urllib.request.urlopen(url) as response:
        density = {t["topic"]: t["count"] for t in json.loads(response.read())["topics"]}
    assert sum(density.values()) == expected
    # the topic chart beside it shows the same counts per topic
    topic_chart = page.evaluate("""(() => { const c = window.atlasViewer.charts.list.find((c) => c.name === 'topic_depth_1');
        return Object.fromEntries(c.labels.map((label, i) => [label, c.shown[i]])); })()""")
    assert {k: v for k, v in topic_chart.items() if v} == density
    assert "(end included)" in page.locator('.chart[data-field="published"] .axis').inner_text()
    map_image(page, "22-time-range")


def test_a_box_selection_shows_in_the_charts_and_the_table_which_sorts_and_exports(page, dated_server, dated) -> None:
    _, data = dated
    open_dated(page, dated_server)
    page.check("#tool-box")
    area = box(page, "#map")
    left, top = area["x"] + area["width"] * 0.25, area["y"] + area["height"] * 0.45
    right, bottom = area["x"] + area["width"] * 0.5, area["y"] + area["height"] * 0.8
    page.mouse.move(left, top)
    page.mouse.down()
    page.mouse.move(right, bottom, steps=6)
    page.mouse.up()
    selected = page.evaluate("Array.from(window.atlasViewer.selection)")
    assert len(selected) > 20
    wait_for(page, f"window.atlasViewer.table.total === {len(selected)} && window.atlasViewer.table.source === 'selection'",
             timeout=10_000)
    page.wait_for_timeout(200)
    chosen = page.evaluate("Array.from(window.atlasViewer.charts.list.find((c) => c.name === 'label_name').chosen)")
    counts = data["label_name"].iloc[selected].value_counts()
    labels = page.evaluate("window.atlasViewer.charts.list.find((c) => c.name === 'label_name').labels")
    assert {label: chosen[i] for i, label in enumerate(labels) if chosen[i]} == {k: int(v) for k, v in counts.items()}
    assert page.locator('.chart[data-field="label_name"] .chosen').first.bounding_box()["width"] > 0
    assert page.locator("#rows-table tbody tr").count() == min(100, len(selected))
    # sort by words, largest first (two clicks on its header)
    header = page.locator("#rows-table th button", has_text="words")
    header.click()
    wait_for(page, "window.atlasViewer.table.sort === 'words' && (window.atlasViewer.table.loaded || 0) >= 2", timeout=10_000)
    page.locator("#rows-table th button", has_text="words").click()
    wait_for(page, "window.atlasViewer.table.order === 'desc' && (window.atlasViewer.table.loaded || 0) >= 3", timeout=10_000)
    page.wait_for_timeout(200)
    column = page.locator("#rows-table th").evaluate_all("(ths) => ths.map((th) => th.innerText)")
    index = next(i for i, name in enumerate(column) if name.startswith("words"))
    shown = [int(v) for v in page.locator(f"#rows-table tbody tr td:nth-child({index + 1})").all_inner_texts()]
    assert shown == sorted(data["words"].iloc[selected].tolist(), reverse=True)[:len(shown)]
    map_image(page, "23-selection-table")
    with page.expect_download() as download_info:
        page.click("#table-export")
    with open(download_info.value.path(), encoding="utf-8") as file:
        exported = list(csv.DictReader(file))
    assert sorted(int(r["row"]) for r in exported) == sorted(selected)
    assert [int(r["words"]) for r in exported] == sorted(data["words"].iloc[selected].tolist(), reverse=True)
    assert {r["id"] for r in exported} == set(data["id"].iloc[selected])


def test_labels_sit_where_their_topics_are_densest_and_density_is_drawn(page, dated_server, dated) -> None:
    source, _ = dated
    open_dated(page, dated_server)
    anchors = [a for a in page.evaluate("window.atlasViewer.labelAnchors") if a["depth"] == 1]
    points = source.points()
    xy = np.stack([points.x, points.y], axis=1).astype(float)
    for anchor in anchors:
        members = xy[points.topic_codes[0] == anchor["code"]]
        radius = 0.5 * np.sqrt(members.var(axis=0).mean())  # the viewer's kernel: half the spread
        at_anchor = int((np.hypot(*(members - [anchor["x"], anchor["y"]]).T) < radius).sum())
        at_mean = int((np.hypot(*(members - members.mean(axis=0)).T) < radius).sum())
        assert at_anchor >= at_mean, anchor["label"]
    assert page.evaluate("window.atlasViewer.density.levels") >= 3
    with_density = map_image(page, "24-density")
    page.select_option("#density-mode", "off")
    page.wait_for_timeout(300)
    without = map_image(page, "25-no-density")
    # contours and shade darken the map's dense parts
    assert with_density.sum() < without.sum()
