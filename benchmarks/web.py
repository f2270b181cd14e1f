"""Web map: load time, payload and interactivity for 10k, 100k and 1M points in a real Chromium.

For each size a synthetic map (a 2-D Gaussian mixture of 40 clusters as depth-1 topics, 4 sub-topics
each at depth 2, 2% of points in duplicate pairs, a category, a number and a short text per point)
is served by the real app on loopback and opened in headless Chromium (WebGL through SwiftShader: a
CPU rasteriser, so frame times are an upper bound of what a GPU gives). Measured:

- server: building the source (tables -> point columns), encoding points.bin, meta JSON size;
- payload: points.bin bytes (11 per point) against the same points as JSON (a naive API), raw and
  gzip-compressed (the reference this format is judged by);
- browser: time to meta, to points received, to the first frame drawn (page navigation excluded),
  median frame time while panning (30 frames), hover-to-tooltip latency, a text search round trip,
  and a box selection over half the map (rows computed in the page);
- the views beside the map: when the charts (one per field) and the labels of every depth are
  ready (from the same origin as the first frame), the overlay (density contours and shade, labels) per frame, a density recomputation, filter
  latency (a click on a category bar, and a date range, until the filtered map is drawn: a sample
  first, as while panning, the full set at rest), a panning
  frame with the filter on, the first page of the table and the table sorted by a number.

Run: .venv/bin/python -m benchmarks.web [--sizes 10000 100000 1000000] [--repeats 3]
(writes benchmarks/results/web.json). The machine has 2 shared cores: read ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atlas_assets.web.app import BackgroundServer, create_app, encode_points, map_meta, map_path
from atlas_assets.web.source import FrameMapSource, MapTables
from resources.tags import TagStore

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results"
CHROMIUM = os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]
WORDS = "market oil team season vote court storm chip launch bank film match deal rate cloud".split()


def wait_for(page: Any, expression: str, timeout: float) -> None:
    """Poll a JavaScript expression until truthy (the page's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        page.wait_for_timeout(20)


def synthetic_tables(n: int, seed: int = 0) -> MapTables:
    """A synthetic map of n points with topics at two depths, duplicates and three fields."""
    rng = np.random.default_rng(seed)
    clusters = 40
    centres = rng.uniform(-50, 50, size=(clusters, 2))
    cluster = rng.integers(0, clusters, size=n)
    offsets = rng.normal(0, 1, size=(n, 2)) * rng.uniform(1.5, 5, size=clusters)[cluster, None]
    xy = (centres[cluster] + offsets).astype(np.float32)
    sub = (offsets[:, 0] > 0).astype(int) * 2 + (offsets[:, 1] > 0).astype(int)
    ids = np.char.add("p", np.arange(n).astype(str))
    topic1 = np.array([f"topic {c} {WORDS[c % len(WORDS)]}" for c in range(clusters)], dtype=object)
    topic2 = np.array([f"{WORDS[c % len(WORDS)]} {c}.{s}" for c in range(clusters) for s in range(4)], dtype=object)
    duplicate_class = np.full(n, "singleton", dtype=object)
    pairs = rng.choice(n, size=(n // 100, 2), replace=False)
    duplicate_class[pairs[:, 0]] = "retention candidate"
    duplicate_class[pairs[:, 1]] = "deletion candidate"
    word = np.asarray(WORDS, dtype=object)[rng.integers(0, len(WORDS), size=n)]
    text = "synthetic item about " + word + " in cluster " + cluster.astype(str).astype(object)
    published = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730 * 86400, size=n), unit="s")
    return MapTables(
        projected=pd.DataFrame({"id": ids, "x": xy[:, 0], "y": xy[:, 1]}),
        data=pd.DataFrame({"id": ids, "text": text, "category": word,
                           "score": rng.normal(size=n).astype(np.float32), "published": published}),
        topics=pd.DataFrame({"id": ids, "topic_depth_1": topic1[cluster], "topic_depth_2": topic2[cluster * 4 + sub]}),
        duplicates=pd.DataFrame({"id": ids, "duplicate_class": duplicate_class, "cluster_id": -1}),
        text_field="text",
    )


def naive_json_payload(points: Any) -> bytes:
    """The same per-point state as a JSON list of objects (what a naive API would send)."""
    topic = points.topic_codes[0]
    flags = points.duplicate_class
    records = [
        {"x": round(float(x), 4), "y": round(float(y), 4), "topic": int(t), "flags": int(f)}
        for x, y, t, f in zip(points.x, points.y, topic, flags)
    ]
    return json.dumps(records, separators=(",", ":")).encode()


def measure_server(source: FrameMapSource) -> dict[str, Any]:
    t0 = time.perf_counter()
    points = source.points()
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    binary = encode_points(points)
    encode = time.perf_counter() - t0
    meta = json.dumps(map_meta(source)).encode()
    as_json = naive_json_payload(points)
    return {
        "source_build_s": build,
        "encode_points_s": encode,
        "points_bytes": len(binary),
        "points_gzip_bytes": len(gzip.compress(binary, 6)),
        "bytes_per_point": len(binary) / len(points),
        "meta_bytes": len(meta),
        "naive_json_bytes": len(as_json),
        "naive_json_gzip_bytes": len(gzip.compress(as_json, 6)),
    }


def measure_browser(browser: Any, server: BackgroundServer, key: str, repeats: int) -> dict[str, Any]:
    loads: list[dict[str, float]] = []
    extra: dict[str, Any] = {}
    for attempt in range(repeats):
        context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
        page = context.new_page()
        page.goto(server.url + map_path(key))
        wait_for(page, "window.atlasViewer && (window.atlasViewer.ready || window.atlasViewer.error)",
                               timeout=600_000)
        error = page.evaluate("window.atlasViewer.error")
        if error:
            raise RuntimeError(error)
        # the charts and every depth's labels load after the first frame: wait for them before measuring
        wait_for(page, "window.atlasViewer.charts && window.atlasViewer.charts.ready && window.atlasViewer.labelsReady",
                 timeout=600_000)
        timings = page.evaluate("window.atlasViewer.timings")
        timings["chartsReady"] = timings["chartsReadyAt"] - timings["startedAt"]
        timings["labelsReady"] = timings["labelsReadyAt"] - timings["startedAt"]
        loads.append(timings)
        if attempt == repeats - 1:
            page.wait_for_timeout(500)
            extra["drawn_pixels"] = page.evaluate("window.atlasViewer.nonBackgroundPixels()")
            full = page.evaluate("window.atlasViewer.measureFrames(20, false)")
            extra["full_frame_median_ms"] = full["median"]
            moving = page.evaluate("window.atlasViewer.measureFrames(40, true)")
            extra["pan_frame_median_ms"] = moving["median"]
            extra["pan_points_drawn"] = moving["drawn"]
            # hover: move onto a point, time until the tooltip shows its datum
            hover_times = []
            for row in (0, 1, 2, 3, 4):
                page.mouse.move(5, 5)
                page.wait_for_timeout(100)
                x, y = page.evaluate(f"window.atlasViewer.screenPosition({row})")
                t0 = time.perf_counter()
                page.mouse.move(x, y)
                page.locator("#tooltip").wait_for(state="visible", timeout=60_000)
                hover_times.append((time.perf_counter() - t0) * 1000)
            extra["hover_to_tooltip_ms"] = statistics.median(hover_times)
            page.mouse.move(5, 5)
            page.wait_for_timeout(1000)  # let the page rest: no pending full redraws
            t0 = time.perf_counter()
            page.fill("#search-input", "oil")
            page.select_option("#search-mode", "text")
            page.press("#search-input", "Enter")
            wait_for(page, "(window.atlasViewer.searchDone || 0) >= 1", timeout=600_000)
            extra["text_search_ms"] = (time.perf_counter() - t0) * 1000
            extra["text_search_matches"] = page.evaluate("window.atlasViewer.searchRows.length")
            extra["text_search_in_page_ms"] = page.evaluate("window.atlasViewer.timings.lastSearchMs")
            page.click("#search-clear")
            page.wait_for_timeout(1000)
            page.check("#tool-box")
            box = page.locator("#map").bounding_box()
            page.mouse.move(box["x"] + 5, box["y"] + 5)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] - 5, steps=3)
            t0 = time.perf_counter()
            page.mouse.up()
            wait_for(page, "window.atlasViewer.selection.length > 0", timeout=600_000)
            extra["box_select_ms"] = (time.perf_counter() - t0) * 1000
            extra["box_selected"] = page.evaluate("window.atlasViewer.selection.length")
            extra["box_select_in_page_ms"] = page.evaluate("window.atlasViewer.timings.lastSelectionMs")
            page.check("#tool-pan")
            page.keyboard.press("Escape")
            extra.update(measure_views(page))
            heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
            extra["js_heap_mb"] = heap / 2**20 if heap else None
        context.close()
    summary = {f"{name}_ms": statistics.median(load[name] for load in loads)
               for name in ("meta", "points", "firstFrame", "chartsReady", "labelsReady")}
    summary["load_runs"] = loads
    summary.update(extra)
    return summary


# in the page: a click on the first bar of a chart, until the map has been drawn filtered
FILTER_CLICK = """async (field) => {
  const v = window.atlasViewer, before = v.charts.updates;
  const t0 = performance.now();
  document.querySelector('.chart[data-field="' + field + '"] .bar').click();
  await new Promise((resolve) => { const check = () => (v.charts.updates > before
    ? requestAnimationFrame(() => requestAnimationFrame(resolve)) : requestAnimationFrame(check)); check(); });
  return { ms: performance.now() - t0, crossfilterMs: v.charts.lastUpdateMs, visible: v.visibleCount };
}"""
TIME_RANGE = """async () => {
  const v = window.atlasViewer, before = v.charts.updates;
  const c = v.charts.list.find((c) => c.kind === 'temporal');
  const t0 = performance.now();
  const range = v.setTimeRange(c.name, c.edges[2], c.edges[Math.floor(c.edges.length / 2)]);
  await new Promise((resolve) => { const check = () => (v.charts.updates > before
    ? requestAnimationFrame(() => requestAnimationFrame(resolve)) : requestAnimationFrame(check)); check(); });
  return { ms: performance.now() - t0, crossfilterMs: v.charts.lastUpdateMs, visible: v.visibleCount, range };
}"""
OVERLAY = """() => { const v = window.atlasViewer, times = [];
  for (let i = 0; i < 15; i++) { const t0 = performance.now(); v._drawOverlay(); times.push(performance.now() - t0); }
  times.sort((a, b) => a - b); return { ms: times[7], labels: v.placedLabels.length, density: v.density }; }"""


def measure_views(page: Any) -> dict[str, Any]:
    """The charts, labels, density, cross-filtering and table of an open page."""
    out: dict[str, Any] = {}
    wait_for(page, "window.atlasViewer.charts && window.atlasViewer.charts.ready && window.atlasViewer.labelsReady",
             timeout=600_000)
    out["charts"] = page.evaluate("window.atlasViewer.charts.list.length")
    page.wait_for_timeout(800)
    overlay = page.evaluate(OVERLAY)
    out["overlay_frame_ms"] = overlay["ms"]
    out["labels_placed"] = overlay["labels"]
    out["density_compute_ms"] = overlay["density"]["computeMs"]
    clicks = [page.evaluate(FILTER_CLICK, "category") for _ in range(3)]  # on, off, on
    out["filter_click_ms"] = statistics.median(c["ms"] for c in clicks)
    out["filter_crossfilter_ms"] = statistics.median(c["crossfilterMs"] for c in clicks)
    out["filter_visible_points"] = clicks[-1]["visible"]
    moving = page.evaluate("window.atlasViewer.measureFrames(30, true)")
    out["filtered_pan_frame_ms"] = moving["median"]
    page.click("#filters-clear")
    page.wait_for_timeout(500)
    ranged = page.evaluate(TIME_RANGE)
    out["time_range_ms"] = ranged["ms"]
    out["time_range_visible_points"] = ranged["visible"]
    page.click("#filters-clear")
    page.wait_for_timeout(800)
    loaded = page.evaluate("window.atlasViewer.table.loaded || 0")
    out["table_first_page_ms"] = page.evaluate("window.atlasViewer.table.lastLoadMs")
    t0 = time.perf_counter()
    page.locator("#rows-table th button", has_text="score").click()
    wait_for(page, f"(window.atlasViewer.table.loaded || 0) > {loaded}", timeout=600_000)
    out["table_sort_ms"] = (time.perf_counter() - t0) * 1000
    out["table_sorted_rows"] = page.evaluate("window.atlasViewer.table.total")
    return out


def run(sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for n in sizes:
            t0 = time.perf_counter()
            tables = synthetic_tables(n)
            generate = time.perf_counter() - t0
            tag_dir = RESULTS / ".web-bench-tags"
            source = FrameMapSource(f"bench/synthetic/n{n}", f"synthetic {n:,} points", tables,
                                    tags=TagStore(tag_dir))
            row: dict[str, Any] = {"points": n, "generate_s": generate}
            row.update(measure_server(source))
            server = BackgroundServer(create_app([source]))
            try:
                row.update(measure_browser(browser, server, source.key, repeats))
            finally:
                server.stop()
            rows.append(row)
            print_row(row)
        browser.close()
    return rows


HEADER = (f"{'points':>9} {'points.bin':>11} {'JSON':>11} {'JSON.gz':>10} {'meta':>8} "
          f"{'first frame':>11} {'full frame':>10} {'pan frame':>9} {'hover':>7} {'search':>7} {'box sel':>8} {'encode':>7}"
          f" | {'charts':>7} {'labels':>7} {'overlay':>7} {'filter':>7} {'x-filt':>6} {'filt pan':>8} {'time rng':>8}"
          f" {'table':>6} {'sort':>6}")


def print_row(row: dict[str, Any]) -> None:
    mb = 2**20
    print(
        f"{row['points']:>9,} {row['points_bytes'] / mb:>9.2f}MB {row['naive_json_bytes'] / mb:>9.2f}MB "
        f"{row['naive_json_gzip_bytes'] / mb:>8.2f}MB {row['meta_bytes'] / 1024:>6.1f}kB "
        f"{row['firstFrame_ms']:>9.0f}ms {row['full_frame_median_ms']:>8.1f}ms {row['pan_frame_median_ms']:>7.1f}ms {row['hover_to_tooltip_ms']:>5.0f}ms "
        f"{row['text_search_ms']:>5.0f}ms {row['box_select_ms']:>6.0f}ms {row['encode_points_s'] * 1000:>5.0f}ms"
        f" | {row['chartsReady_ms']:>5.0f}ms {row['labelsReady_ms']:>5.0f}ms {row['overlay_frame_ms']:>5.1f}ms"
        f" {row['filter_click_ms']:>5.0f}ms {row['filter_crossfilter_ms']:>4.0f}ms {row['filtered_pan_frame_ms']:>6.1f}ms"
        f" {row['time_range_ms']:>6.0f}ms {row['table_first_page_ms']:>4.0f}ms {row['table_sort_ms']:>4.0f}ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="page loads per size (median reported)")
    args = parser.parse_args()
    print(HEADER)
    rows = run(args.sizes, args.repeats)
    load = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "web",
        "command": "python -m benchmarks.web " + " ".join(f"--sizes {' '.join(map(str, args.sizes))}".split())
        + f" --repeats {args.repeats}",
        "machine_load_1_5_15": load,
        "renderer": "headless Chromium, WebGL on SwiftShader (CPU)",
        "rows": rows,
    }
    (RESULTS / "web.json").write_text(json.dumps(result, indent=2, default=float))
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; wrote {RESULTS / 'web.json'}")


if __name__ == "__main__":
    main()
