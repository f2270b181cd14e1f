/* Topic labels at every zoom, for the Atlas map viewer (viewer.js).
 *
 * Each topic at each depth gets an anchor where its points are densest (not their mean: a topic
 * shaped like a crescent or with a few far points has its mean in empty space): its points are
 * binned on a small grid over the topic's own extent, the grid smoothed, and from the fullest cell
 * (and from the mean) a few mean-shift steps climb to the densest place. Its spread (standard deviation) says how big it is on screen.
 *
 * Every frame the labels are placed greedily by priority (shallower depth first, then bigger topic),
 * each at its anchor or just above or below it, and kept only if its box overlaps no box already
 * placed (screen space); a topic is a candidate once its points cover enough of the screen, and a
 * topic that fills the screen yields to its subtopics. So the first view shows the depth-1 names and
 * as many depth-2 names as fit, and zooming in brings deeper names where there is room.
 */
(function () {
  "use strict";
  const viewer = window.atlasViewer;
  if (!viewer || !viewer.ext) return;
  const ext = viewer.ext;

  const GRID = 24;              // cells per side of a topic's own grid
  const MAX_LABELS = 160;
  const FONT = "'DejaVu Sans', sans-serif";
  const anchors = {};           // depth -> [{x, y, spread, size, label, code, parent, depth}] by code
  const ordered = [];           // every anchored topic, in priority order
  let visibleCounts = {};       // depth -> Int32Array of visible points per code (filters on), or null
  const widths = new Map();

  function topicAnchors(depth, codes, topics) {
    const n = ext.n, xs = ext.xs, ys = ext.ys;
    const k = topics.reduce((m, t) => Math.max(m, t.code + 1), 0);
    const count = new Float64Array(k), sx = new Float64Array(k), sy = new Float64Array(k);
    const sxx = new Float64Array(k), syy = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      const t = codes[i];
      if (t >= k) continue;
      const x = xs[i], y = ys[i];
      if (x !== x || y !== y) continue;
      count[t]++; sx[t] += x; sy[t] += y; sxx[t] += x * x; syy[t] += y * y;
    }
    // each topic's box: mean +- 2.5 sd (a few far points do not stretch it)
    const x0 = new Float64Array(k), y0 = new Float64Array(k), cw = new Float64Array(k), ch = new Float64Array(k);
    const spread = new Float64Array(k);
    for (let t = 0; t < k; t++) {
      if (!count[t]) continue;
      const mx = sx[t] / count[t], my = sy[t] / count[t];
      const vx = Math.max(0, sxx[t] / count[t] - mx * mx), vy = Math.max(0, syy[t] / count[t] - my * my);
      const dx = Math.sqrt(vx) || 1e-6, dy = Math.sqrt(vy) || 1e-6;
      spread[t] = Math.sqrt((vx + vy) / 2) || 1e-6;
      x0[t] = mx - 2.5 * dx; y0[t] = my - 2.5 * dy;
      cw[t] = (5 * dx) / GRID; ch[t] = (5 * dy) / GRID;
    }
    const cells = GRID * GRID;
    const grid = new Float32Array(k * cells);
    const cellOf = (t, x, y) => {
      const cx = Math.floor((x - x0[t]) / cw[t]), cy = Math.floor((y - y0[t]) / ch[t]);
      return cx < 0 || cy < 0 || cx >= GRID || cy >= GRID ? -1 : cy * GRID + cx;
    };
    for (let i = 0; i < n; i++) {
      const t = codes[i];
      if (t >= k || !count[t]) continue;
      const c = cellOf(t, xs[i], ys[i]);
      if (c >= 0) grid[t * cells + c]++;
    }
    // smooth (3x3 box, twice) and take the fullest cell
    const best = new Int32Array(k).fill(-1);
    const a = new Float32Array(cells), b = new Float32Array(cells);
    for (let t = 0; t < k; t++) {
      if (!count[t]) continue;
      a.set(grid.subarray(t * cells, (t + 1) * cells));
      for (let pass = 0; pass < 2; pass++) {
        for (let cy = 0; cy < GRID; cy++) {
          for (let cx = 0; cx < GRID; cx++) {
            let s = 0;
            for (let oy = -1; oy <= 1; oy++) {
              const yy = cy + oy;
              if (yy < 0 || yy >= GRID) continue;
              for (let ox = -1; ox <= 1; ox++) {
                const xx = cx + ox;
                if (xx >= 0 && xx < GRID) s += a[yy * GRID + xx];
              }
            }
            b[cy * GRID + cx] = s;
          }
        }
        a.set(b);
      }
      let max = -1;
      for (let c = 0; c < cells; c++) if (a[c] > max) { max = a[c]; best[t] = c; }
    }
    // the anchor: from the fullest cell and from the mean, a few mean-shift steps (the mean of the
    // topic's points within half a standard deviation) climb to a dense place; of the two places and
    // the mean itself, the one with the most of the topic's points within that radius wins
    const px = new Float64Array(3 * k), py = new Float64Array(3 * k), r2 = new Float64Array(k);
    const ax = new Float64Array(3 * k), ay = new Float64Array(3 * k), an = new Float64Array(3 * k);
    for (let t = 0; t < k; t++) {
      if (best[t] < 0) continue;
      px[3 * t] = x0[t] + ((best[t] % GRID) + 0.5) * cw[t];
      py[3 * t] = y0[t] + (((best[t] / GRID) | 0) + 0.5) * ch[t];
      px[3 * t + 1] = px[3 * t + 2] = sx[t] / count[t];
      py[3 * t + 1] = py[3 * t + 2] = sy[t] / count[t];
      r2[t] = 0.25 * spread[t] * spread[t];
    }
    for (let step = 0; step <= 4; step++) {
      ax.fill(0); ay.fill(0); an.fill(0);
      for (let i = 0; i < n; i++) {
        const t = codes[i];
        if (t >= k || best[t] < 0) continue;
        const x = xs[i], y = ys[i];
        for (let s = 3 * t; s < 3 * t + 3; s++) {
          const dx = x - px[s], dy = y - py[s];
          if (dx * dx + dy * dy <= r2[t]) { ax[s] += x; ay[s] += y; an[s]++; }
        }
      }
      if (step === 4) break;  // the last pass only counts
      for (let t = 0; t < k; t++) {
        for (let s = 3 * t; s < 3 * t + 2; s++) if (an[s]) { px[s] = ax[s] / an[s]; py[s] = ay[s] / an[s]; }
      }
    }
    const chosen = new Int32Array(k);
    for (let t = 0; t < k; t++) {
      let s = 3 * t;
      if (an[3 * t + 1] > an[s]) s = 3 * t + 1;
      if (an[3 * t + 2] > an[s]) s = 3 * t + 2;
      chosen[t] = s;
    }
    const out = [];
    for (const topic of topics) {
      const t = topic.code;
      if (!count[t]) continue;
      out[t] = {
        x: best[t] >= 0 ? px[chosen[t]] : sx[t] / count[t], y: best[t] >= 0 ? py[chosen[t]] : sy[t] / count[t],
        spread: spread[t], size: topic.size, label: topic.label, code: t, parent: topic.parent, depth,
      };
    }
    return out;
  }

  function rebuildOrder() {
    ordered.length = 0;
    for (const depth of Object.keys(anchors).map(Number).sort((p, q) => p - q)) {
      const list = anchors[depth].filter(Boolean).sort((p, q) => q.size - p.size);
      ordered.push(...list);
    }
    viewer.labelAnchors = ordered.map((a) => ({ depth: a.depth, code: a.code, label: a.label, x: a.x, y: a.y }));
  }

  function updateVisibleCounts() {
    const mask = ext.visibleMask;
    visibleCounts = {};
    if (!mask) return;
    for (const depth of Object.keys(anchors)) {
      const codes = columns[depth];
      if (!codes) continue;
      const counts = new Int32Array(anchors[depth].length);
      for (let i = 0; i < ext.n; i++) if (mask[i] && codes[i] < counts.length) counts[codes[i]]++;
      visibleCounts[depth] = counts;
    }
  }

  const columns = {};
  async function start() {
    const byDepth = ext.topicsByDepth;
    const depths = viewer.meta.depths;
    if (!depths) return;
    columns[1] = ext.topics;
    anchors[1] = topicAnchors(1, ext.topics, byDepth[1] || []);
    rebuildOrder();
    ext.redrawOverlay();
    for (let depth = 2; depth <= depths; depth++) {
      const column = await ext.fieldColumn("topic_depth_" + depth);
      columns[depth] = column.codes;
      anchors[depth] = topicAnchors(depth, column.codes, byDepth[depth] || []);
      rebuildOrder();
      updateVisibleCounts();
      ext.redrawOverlay();
    }
    viewer.labelsReady = true;
    viewer.timings.labelsReadyAt = performance.now();  // since navigation start
  }

  // the deepest depth whose names can show at this zoom (for tests and the status line)
  function deepest() {
    let depth = 0;
    for (const box of viewer.placedLabels) depth = Math.max(depth, box.depth);
    return depth;
  }
  viewer.labelDepth = deepest;

  function draw(ctx, view) {
    const placed = [];
    viewer.placedLabels = placed;
    if (!ordered.length) return;
    const w = view.width, h = view.height, small = Math.min(w, h);
    const maxDepth = Math.max(...Object.keys(anchors).map(Number));
    const biggest = {};
    for (const a of ordered) biggest[a.depth] = Math.max(biggest[a.depth] || 0, a.size);
    // two rounds: topics of a readable size on screen first (shallow before deep, big before small),
    // then topics grown big (zoomed in) where room is left: their subtopics name the view better
    for (let round = 0; round < 2; round++) {
    for (const a of ordered) {
      if (placed.length >= MAX_LABELS) break;
      const radius = a.spread * view.scale;
      // too small on screen to name yet (zoom in); or filling the screen: its subtopics take over
      if (radius < (a.depth === 1 ? 6 : 16)) continue;
      if (a.depth < maxDepth && radius > 0.55 * small) continue;
      const big = a.depth < maxDepth && radius > 0.2 * small;
      if (big !== (round === 1)) continue;
      const counts = visibleCounts[a.depth];
      if (counts && !counts[a.code]) continue;
      const [sx, sy] = ext.toScreen(a.x, a.y);
      if (sx < -radius || sy < -radius || sx > w + radius || sy > h + radius) continue;
      const share = Math.sqrt(a.size / biggest[a.depth]);
      const fontSize = a.depth === 1 ? Math.round(14 + 4 * share) : a.depth === 2 ? Math.round(11 + 3 * share) : 11;
      const font = (a.depth === 1 ? "700 " : a.depth === 2 ? "600 " : "500 ") + fontSize + "px " + FONT;
      const key = font + "|" + a.label;
      let width = widths.get(key);
      if (width === undefined) { ctx.font = font; width = ctx.measureText(a.label).width; widths.set(key, width); }
      const halfW = width / 2 + 3, halfH = fontSize / 2 + 2;
      // the anchor itself, then just above or below it (still over the topic's dense part)
      for (const dy of [0, -(2 * halfH + 1), 2 * halfH + 1]) {
        if (Math.abs(dy) > radius) continue;
        const box = { x0: sx - halfW, y0: sy + dy - halfH, x1: sx + halfW, y1: sy + dy + halfH };
        if (box.x0 < 0 || box.y0 < 0 || box.x1 > w || box.y1 > h) continue;
        let clash = false;
        for (let p = 0; p < placed.length; p++) {
          const o = placed[p];
          if (box.x0 < o.x1 && box.x1 > o.x0 && box.y0 < o.y1 && box.y1 > o.y0) { clash = true; break; }
        }
        if (clash) continue;
        box.label = a.label; box.depth = a.depth; box.code = a.code;
        placed.push(box);
        ctx.font = font;
        ctx.textAlign = "center"; ctx.textBaseline = "middle";
        ctx.lineJoin = "round"; ctx.lineWidth = a.depth === 1 ? 5 : 4; ctx.strokeStyle = "rgba(255,255,255,0.9)";
        ctx.strokeText(a.label, sx, sy + dy);
        ctx.fillStyle = a.depth === 1 ? "#111418" : a.depth === 2 ? "#2a3038" : "#3d4550";
        ctx.fillText(a.label, sx, sy + dy);
        break;
      }
    }
    }
  }

  ext.addLayer(20, draw);
  ext.on("visibility", () => { updateVisibleCounts(); ext.redrawOverlay(); });
  ext.on("ready", () => { start().catch((error) => console.error(error)); });
})();
