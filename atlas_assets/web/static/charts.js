/* The dataset's fields beside the map, linked both ways (for viewer.js).
 *
 * One chart per field: bars for a category (topics, duplicate class, a categorical field), a
 * histogram for a number, a time series for a date. Clicking bars or brushing a histogram or time
 * range is a filter: the map draws only the rows that pass every chart's filter, and each chart
 * shows the rows that pass the *other* charts' filters (so a chart still shows what else could be
 * chosen). A box or lasso selection on the map shows in every chart as a darker bar on top.
 *
 * Every row's bin in every chart is computed once (Uint16Array); an update is one pass per filtered
 * chart plus one per chart, over typed arrays: tens of milliseconds for a million points.
 *
 * A date range is [start, end], the end included, the rule of map.topics.get_topic_density(
 * time_field, start, end): brushing whole bins, start is the first bin's start and end the last
 * millisecond of the last bin (dates are whole milliseconds, so no row falls between bins).
 */
(function () {
  "use strict";
  const viewer = window.atlasViewer;
  if (!viewer || !viewer.ext) return;
  const ext = viewer.ext;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_BARS = 12, HIST_BINS = 40;
  const charts = [];
  let fails = null, selected = null, clausesChanged = true;
  viewer.charts = { list: charts, updates: 0, lastUpdateMs: 0 };

  // ---- bins -----------------------------------------------------------------------------------------
  function categoricalChart(name, title, codes, categories, counts) {
    const k = categories.length;
    const bins = new Uint16Array(ext.n);
    for (let i = 0; i < ext.n; i++) bins[i] = codes[i] < k ? codes[i] : k;  // k: no value
    const order = categories.map((_, i) => i).sort((a, b) => (counts[b] || 0) - (counts[a] || 0));
    return { name, title, kind: "categorical", bins, nbins: k + 1, labels: categories, order, clause: null };
  }
  function numericChart(name, title, values, temporal) {
    let min = Infinity, max = -Infinity;
    for (let i = 0; i < values.length; i++) { const v = values[i]; if (v === v) { if (v < min) min = v; if (v > max) max = v; } }
    if (!isFinite(min)) { min = 0; max = 1; }
    const edges = temporal ? timeEdges(min, max) : numberEdges(min, max);
    const nb = edges.length - 1;
    const bins = new Uint16Array(ext.n);
    const step = (edges[nb] - edges[0]) / nb, uniform = !temporal;
    for (let i = 0; i < ext.n; i++) {
      const v = values[i];
      if (v !== v) { bins[i] = nb; continue; }
      let b;
      if (uniform) b = Math.min(nb - 1, Math.max(0, Math.floor((v - edges[0]) / step)));
      else { b = upperBound(edges, v) - 1; b = Math.min(nb - 1, Math.max(0, b)); }
      bins[i] = b;
    }
    return { name, title, kind: temporal ? "temporal" : "numeric", bins, nbins: nb + 1, edges, values, clause: null, range: null };
  }
  function upperBound(edges, v) {  // first edge > v
    let lo = 0, hi = edges.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (edges[mid] <= v) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function numberEdges(min, max) {
    if (max === min) { min -= 0.5; max += 0.5; }
    const raw = (max - min) / HIST_BINS, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const start = Math.floor(min / step) * step;
    const edges = [];
    for (let e = start; edges.length < 2 || edges[edges.length - 1] <= max; e += step) edges.push(+e.toPrecision(12));
    return edges;
  }
  // calendar bins in UTC (the server reads naive times as UTC too): hours, days, months or years
  function timeEdges(min, max) {
    const span = Math.max(1, max - min), HOUR = 3600e3, DAY = 24 * HOUR;
    const units = [[HOUR, "h"], [6 * HOUR, "h"], [DAY, "d"], [7 * DAY, "w"], [0, "m"], [0, "q"], [0, "y"]];
    let unit = "y";
    for (const [ms, u] of units) {
      const approx = ms || (u === "m" ? 30.4 * DAY : u === "q" ? 91.3 * DAY : 365.2 * DAY);
      if (span / approx <= 60) { unit = u; break; }
    }
    const edges = [];
    const d = new Date(min);
    let t;
    if (unit === "h") { const step = span / HOUR <= 60 ? HOUR : 6 * HOUR; t = Math.floor(min / step) * step; while (edges.length < 2 || edges[edges.length - 1] <= max) { edges.push(t); t += step; } return edges; }
    if (unit === "d" || unit === "w") {
      t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
      if (unit === "w") t -= ((new Date(t).getUTCDay() + 6) % 7) * DAY;  // weeks start on Monday
      const step = unit === "d" ? DAY : 7 * DAY;
      while (edges.length < 2 || edges[edges.length - 1] <= max) { edges.push(t); t += step; }
      return edges;
    }
    const months = unit === "m" ? 1 : unit === "q" ? 3 : 12;
    let y = d.getUTCFullYear(), m = unit === "y" ? 0 : Math.floor(d.getUTCMonth() / months) * months;
    while (edges.length < 2 || edges[edges.length - 1] <= max) { edges.push(Date.UTC(y, m)); m += months; if (m >= 12) { y += Math.floor(m / 12); m %= 12; } }
    return edges;
  }

  // ---- the cross-filter -----------------------------------------------------------------------------
  function update() {
    const t0 = performance.now();
    const n = ext.n;
    const active = charts.filter((c) => c.clause);
    if (!fails) fails = new Uint8Array(n);
    fails.fill(0);
    for (const c of active) {
      const bins = c.bins, clause = c.clause;
      for (let i = 0; i < n; i++) if (!clause[bins[i]]) fails[i]++;
    }
    const sel = selected;
    for (const c of charts) {
      const total = new Float64Array(c.nbins), shown = new Float64Array(c.nbins), chosen = new Float64Array(c.nbins);
      const bins = c.bins, clause = c.clause;
      for (let i = 0; i < n; i++) {
        const b = bins[i];
        total[b]++;
        const f = fails[i];
        // passes every other chart's filter: no failure, or the only failure is this chart's own
        if (f === 0 || (f === 1 && clause && !clause[b])) { shown[b]++; if (sel && sel[i]) chosen[b]++; }
      }
      c.total = total; c.shown = shown; c.chosen = sel ? chosen : null;
    }
    if (clausesChanged) {  // a new selection alone changes the charts, not the map
      clausesChanged = false;
      let mask = null;
      if (active.length) {
        mask = new Uint8Array(n);
        for (let i = 0; i < n; i++) mask[i] = fails[i] === 0 ? 1 : 0;
      }
      ext.setFilter(mask);
    }
    for (const c of charts) render(c);
    viewer.charts.updates++;
    viewer.charts.lastUpdateMs = performance.now() - t0;
    const status = $("filter-status");
    if (status) {
      status.textContent = active.length ? ext.fmt(viewer.visibleCount) + " of " + ext.fmt(n) + " points pass the filters"
        : "Click bars or drag across a chart to filter the map.";
    }
    $("filters-clear").disabled = !active.length;
  }
  let pending = 0;
  function scheduleUpdate(filtersChanged) {
    if (filtersChanged !== false) clausesChanged = true;
    if (pending) return;
    pending = requestAnimationFrame(() => { pending = 0; update(); });
  }
  viewer.charts.update = update;

  // ---- drawing --------------------------------------------------------------------------------------
  function render(c) {
    if (c.kind === "categorical") renderBars(c); else renderHistogram(c);
  }
  function renderBars(c) {
    const list = c.body;
    const shownCodes = c.expanded ? c.order : c.order.slice(0, MAX_BARS);
    let max = 1;
    for (const code of shownCodes) max = Math.max(max, c.total[code]);
    if (!c.buttons) {
      c.buttons = new Map();
      list.textContent = "";
      for (const code of shownCodes) {
        const li = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button"; button.className = "bar"; button.dataset.code = code;
        button.setAttribute("aria-pressed", "false");
        button.innerHTML = '<span class="name"></span><span class="track"><span class="total"></span>'
          + '<span class="shown"></span><span class="chosen"></span></span><span class="count"></span>';
        button.querySelector(".name").textContent = c.labels[code];
        button.title = c.title + ": " + c.labels[code];
        button.addEventListener("click", (event) => toggleCategory(c, code, event.shiftKey || event.ctrlKey || event.metaKey));
        li.appendChild(button);
        list.appendChild(li);
        c.buttons.set(code, button);
      }
      if (c.order.length > MAX_BARS) {
        const more = document.createElement("button");
        more.type = "button"; more.className = "more";
        more.textContent = c.expanded ? "fewer" : "all " + c.order.length + " values";
        more.addEventListener("click", () => { c.expanded = !c.expanded; c.buttons = null; render(c); });
        const li = document.createElement("li"); li.appendChild(more); list.appendChild(li);
      }
    }
    for (const [code, button] of c.buttons) {
      const pct = (v) => (100 * v / max).toFixed(2) + "%";
      button.querySelector(".total").style.width = pct(c.total[code]);
      button.querySelector(".shown").style.width = pct(c.shown[code]);
      button.querySelector(".chosen").style.width = c.chosen ? pct(c.chosen[code]) : "0%";
      button.querySelector(".count").textContent = ext.fmt(c.chosen ? c.chosen[code] : c.shown[code]);
      button.setAttribute("aria-pressed", c.clause && c.clause[code] ? "true" : "false");
      button.classList.toggle("out", !!c.clause && !c.clause[code]);
    }
  }
  function toggleCategory(c, code, add) {
    const k = c.nbins;
    let clause = c.clause ? c.clause.slice() : new Uint8Array(k);
    if (!add && c.clause) {
      // a plain click picks that value alone (again: back to everything)
      const only = c.clause[code] && c.clause.reduce((s, v) => s + v, 0) === 1;
      clause = new Uint8Array(k);
      if (!only) clause[code] = 1;
    } else {
      clause[code] = clause[code] ? 0 : 1;
    }
    c.clause = clause.some((v) => v) ? clause : null;
    ext.setStatus(c.clause ? "Filtered by " + c.title : "Filter on " + c.title + " cleared");
    scheduleUpdate();
  }

  const W = 270, H = 84, PAD = 2;
  function renderHistogram(c) {
    const svg = c.svg;
    const nb = c.nbins - 1;
    let max = 1;
    for (let b = 0; b < nb; b++) max = Math.max(max, c.total[b]);
    const bw = (W - 2 * PAD) / nb;
    const y = (v) => H - (H - 4) * (v / max);
    const layers = [["total", c.total], ["shown", c.shown]];
    if (c.chosen) layers.push(["chosen", c.chosen]);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (c.kind === "temporal") {
      // a time series: the filtered counts as an area, the whole as a line behind
      for (const [cls, counts] of layers) {
        let d = "M" + PAD + "," + H;
        for (let b = 0; b < nb; b++) d += "L" + (PAD + b * bw) + "," + y(counts[b]) + "L" + (PAD + (b + 1) * bw) + "," + y(counts[b]);
        d += "L" + (W - PAD) + "," + H + "Z";
        const path = document.createElementNS(SVG, "path");
        path.setAttribute("d", d); path.setAttribute("class", cls);
        svg.appendChild(path);
      }
    } else {
      for (const [cls, counts] of layers) {
        for (let b = 0; b < nb; b++) {
          if (!counts[b]) continue;
          const rect = document.createElementNS(SVG, "rect");
          rect.setAttribute("x", PAD + b * bw + 0.5); rect.setAttribute("width", Math.max(0.5, bw - 1));
          rect.setAttribute("y", y(counts[b])); rect.setAttribute("height", H - y(counts[b]));
          rect.setAttribute("class", cls);
          svg.appendChild(rect);
        }
      }
    }
    const range = c.brush || c.range;
    if (range) {
      const [b0, b1] = range;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", PAD + b0 * bw); rect.setAttribute("width", (b1 - b0 + 1) * bw);
      rect.setAttribute("y", 0); rect.setAttribute("height", H); rect.setAttribute("class", "brush");
      svg.appendChild(rect);
    }
    const lo = c.range ? c.edges[c.range[0]] : c.edges[0], hi = c.range ? c.edges[c.range[1] + 1] : c.edges[nb];
    c.axis.textContent = c.kind === "temporal"
      ? formatTime(lo, c) + " – " + formatTime(c.range ? hi - 1 : hi, c) + (c.range ? " (end included)" : "")
      : formatNumber(lo) + " – " + formatNumber(hi);
    c.summary.textContent = ext.fmt(sum(c.chosen || c.shown, nb)) + (c.chosen ? " selected" : " shown")
      + (sum(c.total, c.nbins) > sum(c.total, nb) ? ", " + ext.fmt(c.total[nb]) + " without a value" : "");
  }
  const sum = (a, k) => { let s = 0; for (let b = 0; b < k; b++) s += a[b]; return s; };
  const formatNumber = (v) => (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : String(+v.toPrecision(4)));
  function formatTime(ms, c) {
    const iso = new Date(ms).toISOString();
    const span = c.edges[c.edges.length - 1] - c.edges[0];
    return span > 3 * 86400e3 ? iso.slice(0, 10) : iso.slice(0, 16).replace("T", " ");
  }
  function attachBrush(c) {
    const svg = c.svg;
    const binAt = (event) => {
      const rect = svg.getBoundingClientRect();
      const x = ((event.clientX - rect.left) / rect.width) * W;
      return Math.min(c.nbins - 2, Math.max(0, Math.floor(((x - PAD) / (W - 2 * PAD)) * (c.nbins - 1))));
    };
    let start = -1;
    svg.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      svg.setPointerCapture(event.pointerId);
      start = binAt(event);
      c.brush = [start, start];
      render(c);
    });
    svg.addEventListener("pointermove", (event) => {
      if (start < 0) return;
      const b = binAt(event);
      c.brush = [Math.min(start, b), Math.max(start, b)];
      render(c);
    });
    const finish = (event) => {
      if (start < 0) return;
      const b = binAt(event);
      const [b0, b1] = [Math.min(start, b), Math.max(start, b)];
      start = -1; c.brush = null;
      // a click on the only chosen bin clears the filter
      if (c.range && b0 === b1 && c.range[0] === b0 && c.range[1] === b1) setRange(c, null);
      else setRange(c, [b0, b1]);
    };
    svg.addEventListener("pointerup", finish);
    svg.addEventListener("pointercancel", () => { start = -1; c.brush = null; render(c); });
  }
  function setRange(c, range) {
    c.range = range;
    if (!range) c.clause = null;
    else {
      c.clause = new Uint8Array(c.nbins);
      for (let b = range[0]; b <= range[1]; b++) c.clause[b] = 1;
    }
    if (c.kind === "temporal") {
      viewer.timeRange = range ? { field: c.name, start: c.edges[range[0]], end: c.edges[range[1] + 1] - 1 } : null;
    }
    ext.setStatus(range ? "Filtered by " + c.title : "Filter on " + c.title + " cleared");
    scheduleUpdate();
  }
  // tests and the benchmark set a time range directly: the whole bins from start to end (ms)
  viewer.setTimeRange = (field, start, end) => {
    const c = charts.find((x) => x.name === field);
    const first = c.edges.findIndex((e) => e >= start), last = c.edges.findIndex((e) => e > end) - 1;
    setRange(c, [first, Math.max(first, last)]);
    return viewer.timeRange;
  };

  function clearAll() {
    for (const c of charts) { c.clause = null; c.range = null; }
    viewer.timeRange = null;
    scheduleUpdate();
  }

  // ---- building ---------------------------------------------------------------------------------------
  function shell(c) {
    const section = document.createElement("section");
    section.className = "chart chart-" + c.kind;
    section.dataset.field = c.name;
    const head = document.createElement("h3");
    const label = document.createElement("span");
    label.textContent = c.title;
    const reset = document.createElement("button");
    reset.type = "button"; reset.className = "reset"; reset.textContent = "reset";
    reset.setAttribute("aria-label", "Clear the filter on " + c.title);
    reset.addEventListener("click", () => { c.clause = null; c.range = null; if (c.kind === "temporal") viewer.timeRange = null; scheduleUpdate(); });
    head.append(label, reset);
    section.appendChild(head);
    if (c.kind === "categorical") {
      c.body = document.createElement("ul");
      c.body.className = "bars";
      section.appendChild(c.body);
    } else {
      c.svg = document.createElementNS(SVG, "svg");
      c.svg.setAttribute("viewBox", "0 0 " + W + " " + H);
      c.svg.setAttribute("preserveAspectRatio", "none");
      c.svg.setAttribute("role", "img");
      c.svg.setAttribute("aria-label", (c.kind === "temporal" ? "Time series of " : "Histogram of ") + c.title + "; drag to filter");
      section.appendChild(c.svg);
      c.axis = document.createElement("div"); c.axis.className = "axis";
      c.summary = document.createElement("div"); c.summary.className = "summary";
      section.append(c.axis, c.summary);
      attachBrush(c);
    }
    $("charts").appendChild(section);
    c.section = section;
  }
  const titleOf = (name) => (name === "topic_depth_1" ? "Topic" : name.startsWith("topic_depth_") ? "Topic, depth " + name.slice(12)
    : name === "duplicate_class" ? "Duplicates" : name);

  async function start() {
    const t0 = performance.now();
    const fields = (await (await ext.api("/fields.json")).json()).fields;
    const wanted = fields.filter((f) => f.kind !== "text" && !(f.name.startsWith("topic_depth_") && f.name !== "topic_depth_1"));
    // topics first, then the dataset's own fields, duplicates last
    wanted.sort((a, b) => rank(a) - rank(b));
    for (const f of wanted) {
      let c;
      if (f.name === "topic_depth_1") {
        const list = (ext.topicsByDepth[1] || []).slice().sort((a, b) => a.code - b.code);
        c = categoricalChart(f.name, titleOf(f.name), ext.topics, list.map((t) => t.label), list.map((t) => t.size));
      } else if (f.temporal) {
        const buffer = await (await ext.api("/time/" + encodeURIComponent(f.name))).arrayBuffer();
        c = numericChart(f.name, titleOf(f.name), new Float64Array(buffer), true);
      } else {
        const column = await ext.fieldColumn(f.name);
        c = column.kind === "categorical" ? categoricalChart(f.name, titleOf(f.name), column.codes, column.categories, column.counts)
          : numericChart(f.name, titleOf(f.name), column.values, false);
      }
      charts.push(c);
      shell(c);
    }
    selected = null;
    update();
    viewer.charts.ready = true;
    viewer.charts.buildMs = performance.now() - t0;
    viewer.timings.chartsReadyAt = performance.now();  // since navigation start
  }
  const rank = (f) => (f.name.startsWith("topic_depth_") ? 0 : f.name === "duplicate_class" ? 3 : f.temporal ? 1 : 2);

  ext.on("selection", () => {
    const rows = viewer.selection;
    if (!rows.length) selected = null;
    else { selected = new Uint8Array(ext.n); for (let k = 0; k < rows.length; k++) selected[rows[k]] = 1; }
    if (viewer.charts.ready) scheduleUpdate(false);
  });
  ext.on("ready", () => {
    $("filters-clear").addEventListener("click", clearAll);
    start().catch((error) => { console.error(error); ext.setStatus("The charts could not be loaded: " + error.message); });
  });
})();
