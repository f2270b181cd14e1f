/* Atlas map viewer: a dependency-free WebGL point map.
 *
 * Points arrive once as columns (x, y float32; depth-1 topic uint16; flags uint8) and go straight into
 * GPU buffers. Everything else (datum details, fields to colour by, search results, tags) is fetched
 * when needed. A 2-D canvas on top holds only labels, the hover ring and the selection outline.
 */
(function () {
  "use strict";

  const NO_TOPIC = 65535;
  const PALETTE = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
  ];
  const OTHER_COLOR = "#b8b8b8";
  const HL_SEARCH = 1, HL_SELECTED = 2, HL_TAG = 4, HL_LEGEND = 8;

  // ---- where we are -------------------------------------------------------------------------------
  const parts = location.pathname.split("/").filter(Boolean); // ["map", org, slug, index]
  const mapKey = parts.slice(1, 4).map(decodeURIComponent);
  const apiBase = "/api/maps/" + parts.slice(1, 4).join("/");
  const token = new URLSearchParams(location.search).get("token");
  const authHeaders = token ? { Authorization: "Bearer " + token } : {};
  // Changing tags needs the server's write token: the page carries it on a loopback server; a server
  // reachable from elsewhere gives it to its users as a link ending in #write=<token> (kept for this tab).
  const writeToken = (function () {
    const meta = document.querySelector('meta[name="atlas-write-token"]');
    const inPage = meta && !meta.content.startsWith("{{") ? meta.content : "";
    const inLink = new URLSearchParams(location.hash.slice(1)).get("write");
    let kept = null;
    try {
      if (inLink) sessionStorage.setItem("atlas-write-token", inLink);
      kept = sessionStorage.getItem("atlas-write-token");
    } catch (e) { /* storage off: the link's token still works until reload */ }
    if (inLink) history.replaceState(null, "", location.pathname + location.search);
    return inPage || inLink || kept || "";
  })();
  const writeHeaders = writeToken ? { "X-Atlas-Write-Token": writeToken } : {};
  const $ = (id) => document.getElementById(id);

  const viewer = {
    ready: false,
    error: null,
    timings: {},
    meta: null,
    count: 0,
    hoveredRow: -1,
    selection: new Uint32Array(0),
    searchRows: new Uint32Array(0),
    lastDatum: null,
    frames: 0,
  };
  window.atlasViewer = viewer;

  // every request after meta names the map build it speaks of (?v=): after a rebuild the server
  // refuses rather than answer, or tag, with the old row numbering
  const withVersion = (path) => (viewer.meta ? path + (path.includes("?") ? "&" : "?") + "v=" + viewer.meta.version : path);
  async function api(path, options) {
    const response = await fetch(apiBase + withVersion(path), Object.assign({ headers: authHeaders }, options || {}));
    if (response.status === 409 && viewer.meta) {
      let message = "";
      try { message = (await response.clone().json()).error || ""; } catch (e) { /* not JSON */ }
      if (message.includes("rebuilt")) { viewer.stale = true; setStatus("The map was rebuilt since this page was loaded: reload the page."); }
    }
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return response;
  }
  const withToken = (url) => (token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url);

  function setStatus(text) { $("status").textContent = text; }
  function hexToRgb(hex) {
    const v = parseInt(hex.slice(1), 16);
    return [((v >> 16) & 255) / 255, ((v >> 8) & 255) / 255, (v & 255) / 255];
  }
  const fmt = (n) => n.toLocaleString("en-US");

  // ---- WebGL --------------------------------------------------------------------------------------
  const glCanvas = $("points-layer");
  const overlay = $("overlay-layer");
  const ctx = overlay.getContext("2d");
  const GL_OPTIONS = { antialias: false, alpha: false, premultipliedAlpha: false };
  const gl = glCanvas.getContext("webgl2", GL_OPTIONS) || glCanvas.getContext("webgl", GL_OPTIONS);
  // 32-bit element indices: native in WebGL2, an extension in WebGL1 (then subsets are drawn less cleverly)
  const uintIndices = !!gl && (typeof WebGL2RenderingContext !== "undefined" && gl instanceof WebGL2RenderingContext
    || !!gl.getExtension("OES_element_index_uint"));

  // Colours are computed per point in JavaScript when the colouring changes (3 bytes per point), so
  // the vertex shader does almost nothing: that keeps a million points cheap even on a CPU rasteriser.
  const VERTEX = `
    precision highp float;
    attribute float a_x; attribute float a_y; attribute vec4 a_color; attribute float a_hlNormalised;
    uniform vec2 u_center; uniform vec2 u_scale; uniform float u_size; uniform float u_litSize; uniform float u_alpha;
    uniform float u_anyHl; uniform float u_pass;
    varying vec4 v_color;
    void main() {
      gl_Position = vec4((a_x - u_center.x) * u_scale.x, (a_y - u_center.y) * u_scale.y, 0.0, 1.0);
      vec3 c = a_color.rgb;
      float a_hl = floor(a_hlNormalised * 255.0 + 0.5);
      float size = u_size; float alpha = u_alpha;
      if (u_anyHl > 0.5) {
        if (a_hl > 0.5) {
          size = u_litSize; alpha = 1.0;
          if (mod(a_hl, 2.0) >= 1.0) { c = mix(c, vec3(0.85, 0.1, 0.1), 0.55); }
        } else {
          alpha = u_alpha * 0.25; c = mix(c, vec3(0.75), 0.6);
        }
      }
      gl_PointSize = size;
      v_color = vec4(c, alpha);
    }`;
  const FRAGMENT = `
    precision mediump float;
    varying vec4 v_color;
    void main() {
      vec2 d = gl_PointCoord - vec2(0.5);
      float r2 = dot(d, d);
      if (r2 > 0.25) discard;
      float edge = 1.0 - smoothstep(0.16, 0.25, r2);  // soft rim instead of jagged pixels
      gl_FragColor = vec4(v_color.rgb, v_color.a * (0.35 + 0.65 * edge));
    }`;

  function compile(type, source) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
    return shader;
  }
  let program, loc = {}, buffers = {};
  function initGl() {
    if (!gl) throw new Error("This browser has no WebGL; the map needs it.");
    program = gl.createProgram();
    gl.attachShader(program, compile(gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    gl.useProgram(program);
    for (const name of ["a_x", "a_y", "a_color"]) loc[name] = gl.getAttribLocation(program, name);
    loc.a_hl = gl.getAttribLocation(program, "a_hlNormalised");
    for (const name of ["u_center", "u_scale", "u_size", "u_litSize", "u_alpha", "u_anyHl", "u_pass"]) {
      loc[name] = gl.getUniformLocation(program, name);
    }
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
  }
  // Two sets of vertex buffers: every point ("full"), and a random sample of at most LOD_SIZE
  // points ("lod") drawn while the view moves. The sample has buffers of its own because drawing a
  // few indices out of a million still makes some renderers (SwiftShader) process all of them.
  const LOD_SIZE = 200000;
  // Formats every renderer takes natively (4-byte colours, normalised bytes): odd ones such as
  // 3-byte colours get converted by ANGLE, which costs SwiftShader a pass over the whole buffer.
  const ATTRIBUTES = { a_x: [1, "FLOAT", false], a_y: [1, "FLOAT", false], a_color: [4, "UNSIGNED_BYTE", true],
    a_hl: [1, "UNSIGNED_BYTE", true] };
  const sets = { full: {}, lod: {} };
  let boundSet = null;
  function upload(set, name, data) {
    const buffer = sets[set][name] || gl.createBuffer();
    sets[set][name] = buffer;
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
    boundSet = null;
  }
  function bindSet(set) {
    if (boundSet === set) return;
    for (const [name, [size, type, normalized]] of Object.entries(ATTRIBUTES)) {
      gl.bindBuffer(gl.ARRAY_BUFFER, sets[set][name]);
      gl.enableVertexAttribArray(loc[name]);
      gl.vertexAttribPointer(loc[name], size, gl[type], normalized, 0, 0);
    }
    boundSet = set;
  }
  // lodRows: the sampled rows (a prefix of a fixed random permutation), so any prefix is uniform
  let lodRows = new Uint32Array(0);
  function attribute(name, data) {
    upload("full", name, data);
    if (!lodRows.length) return;
    const sample = new data.constructor(lodRows.length);  // one element per point (colours: packed Uint32)
    for (let k = 0; k < lodRows.length; k++) sample[k] = data[lodRows[k]];
    upload("lod", name, sample);
  }
  // Element index buffers: a random order (level of detail while moving), the duplicates, the highlighted.
  const indexBuffers = {};
  function setIndices(name, rows) {
    if (!uintIndices) return;
    const buffer = indexBuffers[name] || gl.createBuffer();
    indexBuffers[name] = buffer;
    indexBuffers[name + "Count"] = rows.length;
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, rows, gl.STATIC_DRAW);
  }
  function drawIndices(name, count) {
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, indexBuffers[name]);
    gl.drawElements(gl.POINTS, count, gl.UNSIGNED_INT, 0);
  }

  // ---- data ---------------------------------------------------------------------------------------
  let n = 0, xs, ys, topics, flags, highlight, colours, duplicateRows, litRows = new Uint32Array(0);
  let grid = null;
  const colour = { field: "topic_depth_1", kind: "categorical", categories: [], counts: [], colors: [], min: 0, max: 1 };
  let dupOnly = false;
  // visibleMask[i] = 1 when point i is drawn ("Duplicates only" and the charts' filters), null: all are
  let visibleMask = null, filterMask = null, drawOrder = null, visibleCount = 0;

  function buildGrid() {
    const [x0, y0, x1, y1] = viewer.meta.bounds;
    const size = Math.max(1, Math.min(1024, Math.ceil(Math.sqrt(n / 8))));
    const w = (x1 - x0) || 1, h = (y1 - y0) || 1;
    const cellOf = new Uint32Array(n);
    const start = new Uint32Array(size * size + 1);
    for (let i = 0; i < n; i++) {
      const cx = Math.min(size - 1, Math.max(0, Math.floor(((xs[i] - x0) / w) * size)));
      const cy = Math.min(size - 1, Math.max(0, Math.floor(((ys[i] - y0) / h) * size)));
      const c = cy * size + cx;
      cellOf[i] = c;
      start[c + 1]++;
    }
    for (let c = 0; c < size * size; c++) start[c + 1] += start[c];
    const fill = start.slice(0, size * size);
    const items = new Uint32Array(n);
    for (let i = 0; i < n; i++) items[fill[cellOf[i]]++] = i;
    grid = { size, x0, y0, w, h, start, items };
  }

  function nearestRow(dataX, dataY, radius) {
    if (!grid) return -1;
    const { size, x0, y0, w, h, start, items } = grid;
    const cx0 = Math.max(0, Math.floor(((dataX - radius - x0) / w) * size));
    const cx1 = Math.min(size - 1, Math.floor(((dataX + radius - x0) / w) * size));
    const cy0 = Math.max(0, Math.floor(((dataY - radius - y0) / h) * size));
    const cy1 = Math.min(size - 1, Math.floor(((dataY + radius - y0) / h) * size));
    let best = -1, bestD = radius * radius;
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        const c = cy * size + cx;
        for (let k = start[c]; k < start[c + 1]; k++) {
          const i = items[k];
          if (visibleMask && !visibleMask[i]) continue;
          const dx = xs[i] - dataX, dy = ys[i] - dataY, d = dx * dx + dy * dy;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  // ---- view ---------------------------------------------------------------------------------------
  const view = { cx: 0, cy: 0, scale: 1, fitScale: 1, width: 1, height: 1, dpr: 1 };
  const target = { cx: 0, cy: 0, scale: 1, active: false };

  function fitView(immediate) {
    const [x0, y0, x1, y1] = viewer.meta.bounds;
    const scale = 0.92 * Math.min(view.width / ((x1 - x0) || 1), view.height / ((y1 - y0) || 1));
    view.fitScale = scale;
    animateTo((x0 + x1) / 2, (y0 + y1) / 2, scale, immediate);
  }
  function animateTo(cx, cy, scale, immediate) {
    target.cx = cx; target.cy = cy;
    target.scale = Math.max(view.fitScale * 0.25, Math.min(view.fitScale * 5000, scale));
    if (immediate) { view.cx = target.cx; view.cy = target.cy; view.scale = target.scale; target.active = false; }
    else target.active = true;
    requestRender();
  }
  const toData = (px, py) => [view.cx + (px - view.width / 2) / view.scale, view.cy - (py - view.height / 2) / view.scale];
  const toScreen = (x, y) => [view.width / 2 + (x - view.cx) * view.scale, view.height / 2 - (y - view.cy) * view.scale];
  function zoomAt(px, py, factor) {
    const base = target.active ? target : view;
    const [dx, dy] = [base.cx + (px - view.width / 2) / base.scale, base.cy - (py - view.height / 2) / base.scale];
    const scale = Math.max(view.fitScale * 0.25, Math.min(view.fitScale * 5000, base.scale * factor));
    animateTo(dx - (px - view.width / 2) / scale, dy + (py - view.height / 2) / scale, scale, false);
  }
  function pointSize() {
    const base = n > 500000 ? 1.6 : n > 100000 ? 2.2 : n > 20000 ? 3 : n > 3000 ? 4 : 6;
    const zoom = view.scale / view.fitScale;
    return Math.min(base * Math.max(1, Math.pow(zoom, 0.35)), 14) * view.dpr;
  }

  function resize() {
    const rect = $("map").getBoundingClientRect();
    view.dpr = window.devicePixelRatio || 1;
    view.width = Math.max(1, rect.width); view.height = Math.max(1, rect.height);
    for (const canvas of [glCanvas, overlay]) {
      canvas.width = Math.round(view.width * view.dpr);
      canvas.height = Math.round(view.height * view.dpr);
    }
    if (viewer.meta) {
      const previousFit = view.fitScale;
      const [x0, y0, x1, y1] = viewer.meta.bounds;
      view.fitScale = 0.92 * Math.min(view.width / ((x1 - x0) || 1), view.height / ((y1 - y0) || 1));
      if (previousFit && isFinite(previousFit)) { view.scale *= view.fitScale / previousFit; target.scale = view.scale; }
    }
    requestRender();
  }

  // ---- drawing ------------------------------------------------------------------------------------
  // The points layer is redrawn only when the view, colours or highlights change; hovering and
  // drawing a selection outline redraw just the light 2-D overlay (a million points cost a CPU
  // rasteriser most of a second per frame).
  let frameRequested = false, pointsDirty = true;
  function requestRender(points) {
    if (points !== false) pointsDirty = true;
    if (!frameRequested) { frameRequested = true; requestAnimationFrame(frame); }
  }
  function frame() {
    frameRequested = false;
    if (target.active || (drag && tool === "pan")) noteMotion();
    if (target.active) {
      const k = 0.28;
      view.cx += (target.cx - view.cx) * k; view.cy += (target.cy - view.cy) * k;
      view.scale *= Math.pow(target.scale / view.scale, k);
      if (Math.abs(target.scale / view.scale - 1) < 1e-3 && Math.abs(target.cx - view.cx) * view.scale < 0.3
          && Math.abs(target.cy - view.cy) * view.scale < 0.3) {
        view.cx = target.cx; view.cy = target.cy; view.scale = target.scale; target.active = false;
      }
      requestRender();
    }
    draw(true);
  }
  let anyHighlight = false;
  // Level of detail: while the view moves, draw a random subset sized so frames stay fast; the
  // full set is drawn as soon as the view rests.
  const detail = { budget: 0, moving: false, partial: false, lastFrame: 0, restTimer: 0 };
  function drawPoints(full) {
    if (!n) return;
    gl.viewport(0, 0, glCanvas.width, glCanvas.height);
    gl.clearColor(0.969, 0.969, 0.961, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.uniform2f(loc.u_center, view.cx, view.cy);
    gl.uniform2f(loc.u_scale, (2 * view.scale) / view.width, (2 * view.scale) / view.height);
    const size = pointSize();
    gl.uniform1f(loc.u_size, size);
    // a few highlighted points stand out large; a big highlighted share would only cover the map
    const lit = litRows.length;
    gl.uniform1f(loc.u_litSize, lit < 3000 ? Math.max(size * 2.2, 5 * view.dpr) : lit < 50000 ? size * 1.6 : size * 1.25);
    gl.uniform1f(loc.u_alpha, n > 200000 ? 0.55 : n > 20000 ? 0.7 : 0.85);
    gl.uniform1f(loc.u_anyHl, anyHighlight ? 1 : 0);
    gl.uniform1f(loc.u_pass, 0);
    detail.partial = false;
    if (visibleMask && uintIndices) {
      // the visible rows in a random order: while moving, a prefix of them is a uniform sample
      bindSet("full");
      const moving = !full && detail.moving && detail.budget < visibleCount;
      drawIndices("visible", moving ? detail.budget : visibleCount);
      detail.partial = moving;
    } else if (!full && detail.moving && lodRows.length && detail.budget < n) {
      bindSet("lod");
      gl.drawArrays(gl.POINTS, 0, Math.min(detail.budget, lodRows.length));
      detail.partial = true;
    } else {
      bindSet("full");
      gl.drawArrays(gl.POINTS, 0, n);
    }
    if (anyHighlight && uintIndices && litRows.length) {
      bindSet("full");
      gl.uniform1f(loc.u_pass, 1);
      drawIndices("lit", litRows.length);
    }
  }
  function shuffledRows(count) {
    const rows = new Uint32Array(count);
    for (let i = 0; i < count; i++) rows[i] = i;
    let seed = 12345;
    for (let i = count - 1; i > 0; i--) {  // Fisher-Yates with a fixed seed: the same sample every time
      seed = (seed * 1103515245 + 12345) >>> 0;
      const j = seed % (i + 1);
      const t = rows[i]; rows[i] = rows[j]; rows[j] = t;
    }
    return rows;
  }
  function noteMotion() {
    // called for every frame drawn while panning or zooming: adapt the subset to the frame time
    const now = performance.now();
    if (detail.moving && detail.lastFrame) {
      const interval = now - detail.lastFrame;
      if (interval > 45) detail.budget = Math.max(Math.min(30000, lodRows.length), Math.floor(detail.budget * 0.7));
      else if (interval < 25) detail.budget = Math.min(n, lodRows.length || n, Math.floor(detail.budget * 1.25));
    }
    detail.lastFrame = now;
    detail.moving = true;
    clearTimeout(detail.restTimer);
    detail.restTimer = setTimeout(() => { detail.moving = false; detail.lastFrame = 0; if (detail.partial) requestRender(); }, 160);
  }

  function draw(overlayOnly) {
    if (!overlayOnly || pointsDirty) { pointsDirty = false; drawPoints(); }
    viewer.frames++;
    ctx.setTransform(view.dpr, 0, 0, view.dpr, 0, 0);
    ctx.clearRect(0, 0, view.width, view.height);
    drawLayers();
    drawHover();
    drawSelectionShape();
  }

  // Overlay layers drawn under the hover ring and the selection outline, in order (density.js,
  // labels.js register theirs through viewer.ext.addLayer)
  const overlayLayers = [];
  function drawLayers() {
    for (const layer of overlayLayers) {
      try { layer.draw(ctx, view); } catch (error) { console.error(error); }
    }
  }
  viewer.labelDepth = () => 0;
  viewer.placedLabels = [];
  function drawHover() {
    const row = viewer.hoveredRow;
    if (row < 0) return;
    const [sx, sy] = toScreen(xs[row], ys[row]);
    ctx.beginPath();
    ctx.arc(sx, sy, Math.max(5, pointSize() / view.dpr), 0, Math.PI * 2);
    ctx.lineWidth = 2; ctx.strokeStyle = "#111"; ctx.stroke();
  }

  // ---- colouring and legend --------------------------------------------------------------------------
  const topicsByDepth = {};
  function topicCategories() {
    const list = (topicsByDepth[1] || []).slice().sort((a, b) => a.code - b.code);
    return { categories: list.map((t) => t.label), counts: list.map((t) => t.size) };
  }
  function paletteFor(count, hasOther) {
    const colors = [];
    for (let i = 0; i < count; i++) colors.push(hasOther && i === count - 1 ? OTHER_COLOR : PALETTE[i % PALETTE.length]);
    return colors;
  }
  // colours: one packed RGBA Uint32 per point (little-endian: red in the lowest byte)
  const pack = ([r, g, b]) => ((255 << 24) | (Math.round(b * 255) << 16) | (Math.round(g * 255) << 8) | Math.round(r * 255)) >>> 0;
  const GREY = pack([0.63, 0.63, 0.63]);
  function paintCategorical(codes, colorList) {
    const table = Uint32Array.from(colorList.map((hex) => pack(hexToRgb(hex))));
    const k = colorList.length;
    for (let i = 0; i < n; i++) {
      const code = codes[i];
      colours[i] = code < k ? table[code] : GREY;
    }
  }
  const RAMP = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"].map(hexToRgb);
  function rampColour(t) {
    const x = Math.min(0.9999, Math.max(0, t)) * (RAMP.length - 1);
    const i = Math.floor(x), f = x - i;
    return RAMP[i].map((v, c) => v + (RAMP[i + 1][c] - v) * f);
  }
  function paintNumeric(values, min, max) {
    const lut = new Uint32Array(256);
    for (let j = 0; j < 256; j++) lut[j] = pack(rampColour(j / 255));
    const span = max - min || 1;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      colours[i] = v !== v ? GREY : lut[Math.min(255, Math.max(0, Math.floor(((v - min) / span) * 255)))];
    }
  }
  // field columns (fetched once each; shared by colouring, labels and charts): the header plus
  // `codes` (Uint16Array) or `values` (Float32Array)
  const fieldColumns = new Map();
  function fieldColumn(name) {
    if (!fieldColumns.has(name)) {
      const promise = api("/field/" + encodeURIComponent(name)).then((r) => r.arrayBuffer()).then((buffer) => {
        const length = new DataView(buffer).getUint32(0, true);
        const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
        const offset = 4 + length + ((4 - ((4 + length) % 4)) % 4);
        if (header.kind === "categorical") header.codes = new Uint16Array(buffer, offset, n);
        else header.values = new Float32Array(buffer, offset, n);
        return header;
      });
      promise.catch(() => fieldColumns.delete(name));
      fieldColumns.set(name, promise);
    }
    return fieldColumns.get(name);
  }
  async function colourBy(name) {
    let column, codes = null, values = null;
    if (name === "topic_depth_1" && viewer.meta.depths >= 1) {
      const { categories, counts } = topicCategories();
      column = { kind: "categorical", categories, counts };
      codes = topics;
    } else {
      column = await fieldColumn(name);
      codes = column.codes || null;
      values = column.values || null;
    }
    colour.field = name;
    colour.kind = column.kind;
    colour.codes = codes;
    setHighlightBit(HL_LEGEND, []);
    colour.categories = column.categories || [];
    colour.counts = column.counts || [];
    colour.min = column.min == null ? 0 : column.min;
    colour.max = column.max == null ? 1 : column.max;
    const hasOther = colour.categories[colour.categories.length - 1] === "(other)";
    colour.colors = paletteFor(colour.categories.length, hasOther);
    if (codes) paintCategorical(codes, colour.colors);
    else paintNumeric(values, colour.min, colour.max);
    attribute("a_color", colours);
    renderLegend();
    requestRender();
  }
  function renderLegend() {
    const legend = $("legend");
    legend.textContent = "";
    if (colour.kind === "numeric") {
      const li = document.createElement("li");
      li.innerHTML = '<span class="min"></span><span class="ramp" aria-hidden="true"></span><span class="max"></span>';
      li.querySelector(".min").textContent = Number(colour.min).toPrecision(3);
      li.querySelector(".max").textContent = Number(colour.max).toPrecision(3);
      li.setAttribute("aria-label", colour.field + " from " + colour.min + " to " + colour.max);
      legend.appendChild(li);
      return;
    }
    colour.categories.forEach((name, i) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "legend-entry";
      button.setAttribute("aria-pressed", "false");
      button.title = "Highlight " + name;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colour.colors[i];
      const label = document.createElement("span");
      label.className = "name"; label.textContent = name;
      const count = document.createElement("span");
      count.className = "count"; count.textContent = fmt(colour.counts[i] || 0);
      button.append(swatch, label, count);
      button.addEventListener("click", () => toggleLegendEntry(i, button));
      li.appendChild(button);
      legend.appendChild(li);
    });
  }
  // clicking a legend entry highlights its points (again: back to all)
  function toggleLegendEntry(code, button) {
    const pressed = button.getAttribute("aria-pressed") === "true";
    for (const other of document.querySelectorAll("#legend .legend-entry")) other.setAttribute("aria-pressed", "false");
    if (pressed || !colour.codes) { setHighlightBit(HL_LEGEND, []); setStatus("Legend highlight cleared"); return; }
    button.setAttribute("aria-pressed", "true");
    const codes = colour.codes, rows = [];
    const isOther = colour.categories[code] === "(other)";
    for (let i = 0; i < n; i++) if (codes[i] === code || (isOther && codes[i] >= code && codes[i] !== NO_TOPIC)) rows.push(i);
    setHighlightBit(HL_LEGEND, rows);
    setStatus(fmt(rows.length) + " points: " + colour.categories[code]);
  }

  // ---- highlights (search, selection, tags) ----------------------------------------------------------------
  function setHighlightBit(bit, rows) {
    for (let i = 0; i < n; i++) highlight[i] &= ~bit;
    for (let k = 0; k < rows.length; k++) highlight[rows[k]] |= bit;
    rebuildLit();
    attribute("a_hl", highlight);
    requestRender();
  }
  function updateVisibility() {
    if (!dupOnly && !filterMask) {
      visibleMask = null; visibleCount = n;
    } else {
      visibleMask = visibleMask || new Uint8Array(n);
      visibleCount = 0;
      for (let i = 0; i < n; i++) {
        const on = (!dupOnly || (flags[i] & 1)) && (!filterMask || filterMask[i]) ? 1 : 0;
        visibleMask[i] = on; visibleCount += on;
      }
      const rows = new Uint32Array(visibleCount);
      const order = drawOrder || (drawOrder = shuffledRows(n));
      for (let k = 0, j = 0; k < n; k++) { const i = order[k]; if (visibleMask[i]) rows[j++] = i; }
      setIndices("visible", rows);
    }
    viewer.visibleCount = visibleCount;
    rebuildLit();
    noteMotion();  // the first frame after a filter change draws a sample; the full set follows at rest
    requestRender();
    emit("visibility");
  }
  function rebuildLit() {
    let count = 0;
    for (let i = 0; i < n; i++) if (highlight[i] && (!visibleMask || visibleMask[i])) count++;
    litRows = new Uint32Array(count);
    for (let i = 0, k = 0; i < n; i++) if (highlight[i] && (!visibleMask || visibleMask[i])) litRows[k++] = i;
    anyHighlight = false;
    for (let i = 0; i < n; i++) { if (highlight[i]) { anyHighlight = true; break; } }
    setIndices("lit", litRows);
  }
  viewer.setHighlightBit = setHighlightBit;

  // ---- hover and details ---------------------------------------------------------------------------
  const datumCache = new Map();
  async function fetchDatum(row) {
    if (datumCache.has(row)) return datumCache.get(row);
    const promise = api("/datum/" + row).then((r) => r.json());
    datumCache.set(row, promise);
    if (datumCache.size > 500) datumCache.delete(datumCache.keys().next().value);
    return promise;
  }
  function excerptOf(datum) {
    const fields = datum.fields || {};
    if (datum.text_field && typeof fields[datum.text_field] === "string") return fields[datum.text_field];
    let best = "";
    for (const value of Object.values(fields)) if (typeof value === "string" && value.length > best.length) best = value;
    return best || String(datum.id);
  }
  function thumbnail(row, datum) {
    const img = document.createElement("img");
    img.alt = "image of datum " + datum.id;
    img.addEventListener("load", () => { if (img.naturalWidth < 96) img.classList.add("small"); });  // crisp when enlarged
    img.src = withToken(apiBase + withVersion("/image/" + row));
    return img;
  }
  const tooltip = $("tooltip");
  let hoverTimer = 0, hoverToken = 0;
  function showTooltip(row, px, py) {
    viewer.hoveredRow = row;
    requestRender(false);
    clearTimeout(hoverTimer);
    if (row < 0) { tooltip.hidden = true; return; }
    const ticket = ++hoverToken;
    hoverTimer = setTimeout(async () => {
      let datum;
      try { datum = await fetchDatum(row); } catch (e) { return; }
      if (ticket !== hoverToken || viewer.hoveredRow !== row) return;
      viewer.lastDatum = datum;
      tooltip.textContent = "";
      if (datum.has_image) {
        tooltip.appendChild(thumbnail(row, datum));
      }
      if (datum.topics && datum.topics.length) {
        const topic = document.createElement("div");
        topic.className = "topic"; topic.textContent = datum.topics.join(" › ");
        tooltip.appendChild(topic);
      }
      const excerpt = document.createElement("div");
      excerpt.className = "excerpt";
      const text = excerptOf(datum);
      excerpt.textContent = text.length > 280 ? text.slice(0, 280) + "…" : text;
      tooltip.appendChild(excerpt);
      if (datum.duplicate_class && datum.duplicate_class !== "singleton") {
        const dup = document.createElement("div");
        dup.className = "dup"; dup.textContent = "duplicate: " + datum.duplicate_class;
        tooltip.appendChild(dup);
      }
      tooltip.hidden = false;
      const left = Math.min(px + 14, view.width - tooltip.offsetWidth - 8);
      const top = py + 14 + tooltip.offsetHeight > view.height ? py - tooltip.offsetHeight - 10 : py + 14;
      tooltip.style.left = Math.max(4, left) + "px";
      tooltip.style.top = Math.max(4, top) + "px";
    }, 40);
  }
  async function showDetails(row) {
    const datum = await fetchDatum(row);
    const box = $("details");
    box.textContent = "";
    if (datum.has_image) {
      box.appendChild(thumbnail(row, datum));
    }
    const dl = document.createElement("dl");
    const add = (k, v) => {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v == null ? "" : String(v);
      dl.append(dt, dd);
    };
    add("id", datum.id);
    (datum.topics || []).forEach((t, i) => add("topic depth " + (i + 1), t));
    add("duplicates", datum.duplicate_class);
    for (const [k, v] of Object.entries(datum.fields || {})) add(k, v);
    box.appendChild(dl);
    box.scrollIntoView({ block: "nearest" });
  }

  // ---- pointer interaction ----------------------------------------------------------------------------
  let tool = "pan";
  let drag = null;
  let shape = null; // {kind: "box"|"lasso", points: [[px,py],...]}
  function setTool(name) {
    tool = name;
    $("tool-" + name).checked = true;
    $("map").classList.remove("tool-pan", "tool-box", "tool-lasso");
    $("map").classList.add("tool-" + name);
  }
  function localPoint(event) {
    const rect = overlay.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }
  overlay.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    overlay.setPointerCapture(event.pointerId);
    const [px, py] = localPoint(event);
    drag = { startX: px, startY: py, lastX: px, lastY: py, moved: false };
    if (tool !== "pan") shape = { kind: tool, points: [[px, py]] };
    else $("map").classList.add("dragging");
  });
  overlay.addEventListener("pointermove", (event) => {
    const [px, py] = localPoint(event);
    if (drag) {
      if (Math.abs(px - drag.startX) + Math.abs(py - drag.startY) > 3) drag.moved = true;
      if (tool === "pan") {
        const dx = (px - drag.lastX) / view.scale, dy = (py - drag.lastY) / view.scale;
        view.cx -= dx; view.cy += dy;
        target.cx = view.cx; target.cy = view.cy; target.scale = view.scale; target.active = false;
        requestRender();
      } else if (shape) {
        if (shape.kind === "box") shape.points = [[drag.startX, drag.startY], [px, py]];
        else shape.points.push([px, py]);
        requestRender(false);
      }
      drag.lastX = px; drag.lastY = py;
      return;
    }
    if (!n) return;
    const [dxData, dyData] = toData(px, py);
    const radius = Math.max(6, pointSize() / view.dpr) / view.scale;
    const row = nearestRow(dxData, dyData, radius);
    if (row !== viewer.hoveredRow) showTooltip(row, px, py);
  });
  function endDrag(event) {
    if (!drag) return;
    const wasClick = !drag.moved;
    $("map").classList.remove("dragging");
    if (shape && !wasClick) finishSelection(shape);
    shape = null;
    drag = null;
    if (wasClick && event && event.type === "pointerup") {
      const [px, py] = localPoint(event);
      const [dx, dy] = toData(px, py);
      const row = nearestRow(dx, dy, Math.max(6, pointSize() / view.dpr) / view.scale);
      if (row >= 0) showDetails(row);
    }
    requestRender(false);
  }
  overlay.addEventListener("pointerup", endDrag);
  overlay.addEventListener("pointercancel", endDrag);
  overlay.addEventListener("pointerleave", () => { if (!drag) showTooltip(-1); });
  overlay.addEventListener("wheel", (event) => {
    event.preventDefault();
    const [px, py] = localPoint(event);
    const delta = event.deltaMode === 1 ? event.deltaY * 33 : event.deltaY;
    zoomAt(px, py, Math.pow(2, -delta / 300));
  }, { passive: false });
  overlay.addEventListener("dblclick", (event) => { const [px, py] = localPoint(event); zoomAt(px, py, 2); });

  function drawSelectionShape() {
    if (!shape || shape.points.length < 2) return;
    ctx.lineWidth = 1.5; ctx.strokeStyle = "#1f6feb"; ctx.fillStyle = "rgba(31,111,235,0.08)";
    ctx.setLineDash([5, 4]);
    ctx.beginPath();
    if (shape.kind === "box") {
      const [[ax, ay], [bx, by]] = shape.points;
      ctx.rect(Math.min(ax, bx), Math.min(ay, by), Math.abs(bx - ax), Math.abs(by - ay));
    } else {
      shape.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath();
    }
    ctx.fill(); ctx.stroke(); ctx.setLineDash([]);
  }
  function rowsInPolygon(polygon) {
    // polygon in data coordinates
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const [x, y] of polygon) { minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y); }
    const out = [];
    const m = polygon.length;
    for (let i = 0; i < n; i++) {
      const x = xs[i], y = ys[i];
      if (x < minX || x > maxX || y < minY || y > maxY) continue;
      if (visibleMask && !visibleMask[i]) continue;
      let inside = false;
      for (let a = 0, b = m - 1; a < m; b = a++) {
        const ya = polygon[a][1], yb = polygon[b][1];
        if ((ya > y) !== (yb > y)) {
          const xCross = polygon[a][0] + ((y - ya) * (polygon[b][0] - polygon[a][0])) / (yb - ya);
          if (x < xCross) inside = !inside;
        }
      }
      if (inside) out.push(i);
    }
    return Uint32Array.from(out);
  }
  function finishSelection(s) {
    let polygon;
    if (s.kind === "box") {
      const [[ax, ay], [bx, by]] = s.points;
      polygon = [[ax, ay], [bx, ay], [bx, by], [ax, by]];
    } else {
      polygon = s.points;
    }
    if (polygon.length < 3) return;
    const t0 = performance.now();
    select(rowsInPolygon(polygon.map(([px, py]) => toData(px, py))));
    viewer.timings.lastSelectionMs = performance.now() - t0;
  }
  function select(rows) {
    viewer.selection = rows;
    setHighlightBit(HL_SELECTED, rows);
    $("selection-count").textContent = rows.length
      ? fmt(rows.length) + " point" + (rows.length === 1 ? "" : "s") + " selected."
      : "No points selected. Use Box select or Lasso.";
    $("tag-save").disabled = $("tag-remove").disabled = rows.length === 0;
    setStatus(rows.length ? fmt(rows.length) + " points selected" : "Selection cleared");
    emit("selection");
  }
  viewer.select = (rows) => select(Uint32Array.from(rows));

  // ---- search ------------------------------------------------------------------------------------------------
  async function runSearch(query, mode) {
    if (!query.trim()) { clearSearch(); return; }
    setStatus("Searching…");
    const t0 = performance.now();
    let result;
    try {
      const response = await api("/search?q=" + encodeURIComponent(query) + "&mode=" + mode + "&k=" + (mode === "meaning" ? 50 : 200000));
      result = await response.json();
    } catch (error) {
      setStatus("Search failed: " + error.message);
      return;
    }
    viewer.timings.lastSearchResponseMs = performance.now() - t0;
    viewer.searchRows = Uint32Array.from(result.rows);
    setHighlightBit(HL_SEARCH, viewer.searchRows);
    viewer.timings.lastSearchMs = performance.now() - t0;
    setStatus(fmt(result.count) + (result.count === 1 ? " match" : " matches") + " for “" + query + "” (" + mode + ")");
    const list = $("results");
    list.textContent = "";
    for (const row of result.rows.slice(0, 15)) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      const excerpt = document.createElement("span");
      excerpt.className = "excerpt"; excerpt.textContent = "row " + row;
      button.appendChild(excerpt);
      button.addEventListener("click", () => { focusRow(row); showDetails(row); });
      li.appendChild(button);
      list.appendChild(li);
      fetchDatum(row).then((d) => { excerpt.textContent = excerptOf(d).slice(0, 200); }).catch(() => {});
    }
    viewer.searchDone = (viewer.searchDone || 0) + 1;
    emit("search");
  }
  function clearSearch() {
    viewer.searchRows = new Uint32Array(0);
    setHighlightBit(HL_SEARCH, viewer.searchRows);
    $("results").textContent = "";
    setStatus("Search cleared");
    emit("search");
  }
  function focusRow(row) {
    animateTo(xs[row], ys[row], Math.max(view.scale, view.fitScale * 6), false);
  }

  // ---- tags -------------------------------------------------------------------------------------------------
  async function refreshTags() {
    const list = $("tag-list");
    let tags = [];
    try { tags = (await (await api("/tags")).json()).tags; } catch (e) { return; }
    list.textContent = "";
    if (!tags.length) { const li = document.createElement("li"); li.textContent = "No tags yet."; list.appendChild(li); }
    for (const tag of tags) {
      const li = document.createElement("li");
      const name = document.createElement("span"); name.className = "name"; name.textContent = tag.name;
      const count = document.createElement("span"); count.className = "count"; count.textContent = fmt(tag.count);
      const show = document.createElement("button"); show.type = "button"; show.textContent = "Show";
      show.setAttribute("aria-label", "Show points tagged " + tag.name);
      show.addEventListener("click", async () => {
        const rows = new Uint32Array(await (await api("/tags/" + encodeURIComponent(tag.name))).arrayBuffer());
        setHighlightBit(HL_TAG, rows);
        setStatus(fmt(rows.length) + " points tagged " + tag.name);
      });
      li.append(name, count, show);
      list.appendChild(li);
    }
  }
  async function changeTag(action) {
    const name = $("tag-name").value.trim();
    if (!name || !viewer.selection.length) { $("tag-name").focus(); return; }
    $("tag-save").disabled = $("tag-remove").disabled = true;
    try {
      const response = await api("/tags/" + encodeURIComponent(name) + "?action=" + action, {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/octet-stream" }, authHeaders, writeHeaders),
        body: viewer.selection,
      });
      const result = await response.json();
      setStatus((action === "add" ? "Tagged " + fmt(result.changed) + " new points as “"
        : "Removed " + fmt(result.changed) + " points from “") + name + "” (" + fmt(result.count) + " in the tag)");
      viewer.lastTagSaved = result;
      await refreshTags();
    } catch (error) {
      setStatus("Could not change the tag: " + error.message);
    } finally {
      $("tag-save").disabled = $("tag-remove").disabled = viewer.selection.length === 0;
    }
  }
  $("tag-form").addEventListener("submit", (event) => { event.preventDefault(); changeTag("add"); });
  $("tag-remove").addEventListener("click", () => changeTag("remove"));

  // ---- controls and keyboard ------------------------------------------------------------------------------
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch($("search-input").value, $("search-mode").value);
  });
  $("search-clear").addEventListener("click", () => { $("search-input").value = ""; clearSearch(); });
  $("color-by").addEventListener("change", (event) => colourBy(event.target.value).catch((e) => setStatus(e.message)));
  $("duplicates-only").addEventListener("change", (event) => {
    dupOnly = event.target.checked;
    updateVisibility();
    setStatus(dupOnly ? "Showing only the " + fmt(viewer.meta.duplicates.duplicates) + " points with duplicates" : "Showing every point");
    requestRender();
  });
  for (const name of ["pan", "box", "lasso"]) $("tool-" + name).addEventListener("change", () => setTool(name));
  $("zoom-in").addEventListener("click", () => zoomAt(view.width / 2, view.height / 2, 1.6));
  $("zoom-out").addEventListener("click", () => zoomAt(view.width / 2, view.height / 2, 1 / 1.6));
  $("zoom-reset").addEventListener("click", () => fitView(false));
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
    if (event.key === "/" && !typing) { event.preventDefault(); $("search-input").focus(); return; }
    if (event.key === "Escape") {
      if (typing) document.activeElement.blur();
      select(new Uint32Array(0)); setHighlightBit(HL_TAG, []); setHighlightBit(HL_LEGEND, []); showTooltip(-1);
      for (const entry of document.querySelectorAll("#legend .legend-entry")) entry.setAttribute("aria-pressed", "false");
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey || !viewer.ready) return;
    const step = 0.15 / view.scale;
    const actions = {
      ArrowLeft: () => animateTo(target.cx - step * view.width, target.cy, target.scale),
      ArrowRight: () => animateTo(target.cx + step * view.width, target.cy, target.scale),
      ArrowUp: () => animateTo(target.cx, target.cy + step * view.height, target.scale),
      ArrowDown: () => animateTo(target.cx, target.cy - step * view.height, target.scale),
      "+": () => zoomAt(view.width / 2, view.height / 2, 1.6),
      "=": () => zoomAt(view.width / 2, view.height / 2, 1.6),
      "-": () => zoomAt(view.width / 2, view.height / 2, 1 / 1.6),
      "0": () => fitView(false),
      b: () => setTool("box"), l: () => setTool("lasso"), p: () => setTool("pan"),
      d: () => { const box = $("duplicates-only"); box.checked = !box.checked; box.dispatchEvent(new Event("change")); },
    };
    const action = actions[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (action) {
      event.preventDefault();
      if (!target.active) { target.cx = view.cx; target.cy = view.cy; target.scale = view.scale; }
      action();
    }
  });

  // ---- extension surface (labels.js, density.js, charts.js, table.js) ---------------------------------------
  const listeners = {};
  function emit(name) { for (const fn of listeners[name] || []) { try { fn(); } catch (error) { console.error(error); } } }
  viewer.ext = {
    get n() { return n; }, get xs() { return xs; }, get ys() { return ys; }, get topics() { return topics; },
    get flags() { return flags; }, get visibleMask() { return visibleMask; }, get moving() { return detail.moving || target.active; },
    get fitScale() { return view.fitScale; }, view, topicsByDepth,
    api, apiBase, withVersion, authHeaders, setStatus, fmt, fieldColumn, toScreen, toData, focusRow, showDetails,
    on(name, fn) { (listeners[name] = listeners[name] || []).push(fn); if (name === "ready" && viewer.ready) fn(); },
    addLayer(order, draw) { overlayLayers.push({ order, draw }); overlayLayers.sort((a, b) => a.order - b.order); requestRender(false); },
    redrawOverlay() { requestRender(false); },
    setFilter(mask) { filterMask = mask; updateVisibility(); },
    select: (rows) => select(rows),
  };

  // ---- test and benchmark hooks -------------------------------------------------------------------------------
  viewer.screenPosition = (row) => {
    const rect = overlay.getBoundingClientRect();
    const [sx, sy] = toScreen(xs[row], ys[row]);
    return [rect.left + sx, rect.top + sy];
  };
  viewer.view = view;
  viewer._drawPoints = drawPoints;
  viewer._detail = detail;
  viewer._drawOverlay = () => { ctx.clearRect(0, 0, view.width, view.height); drawLayers(); drawHover(); drawSelectionShape(); };
  viewer.nonBackgroundPixels = () => {
    drawPoints(true);
    const w = glCanvas.width, h = glCanvas.height;
    const pixels = new Uint8Array(w * h * 4);
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
    let count = 0;
    for (let i = 0; i < pixels.length; i += 4) {
      if (Math.abs(pixels[i] - 247) + Math.abs(pixels[i + 1] - 247) + Math.abs(pixels[i + 2] - 245) > 24) count++;
    }
    return count;
  };
  viewer.measureFrames = (frames, levelOfDetail) => new Promise((resolve) => {
    // pans a little each frame and reports the median frame time (ms); with levelOfDetail the
    // frames are drawn as during a real pan (a subset sized to the frame time), else in full
    const times = [];
    let last = performance.now(), i = 0;
    function step() {
      const now = performance.now();
      if (i > 0) times.push(now - last);
      last = now;
      view.cx += 2 / view.scale;
      if (levelOfDetail) noteMotion();
      draw();
      gl.finish();
      if (++i <= frames) requestAnimationFrame(step);
      else {
        times.sort((a, b) => a - b);
        resolve({ median: times[Math.floor(times.length / 2)], drawn: detail.partial ? Math.min(detail.budget, lodRows.length) : n });
      }
    }
    requestAnimationFrame(step);
  });

  // ---- start ----------------------------------------------------------------------------------------------
  async function start() {
    const t0 = performance.now();
    viewer.timings.startedAt = t0;  // ms since navigation start, the origin of the other timings
    setTool("pan");
    initGl();
    const meta = await (await api("/meta")).json();
    viewer.meta = meta;
    viewer.timings.meta = performance.now() - t0;
    document.title = meta.title + " · Atlas map";
    if (meta.modality !== "text") $("search-mode").value = "text";  // meaning search takes words on text maps only
    n = viewer.count = meta.count;
    $("loading").textContent = "Loading " + fmt(n) + " points…";
    for (const t of meta.topics) (topicsByDepth[t.depth] = topicsByDepth[t.depth] || []).push(t);
    for (const d in topicsByDepth) topicsByDepth[d].sort((a, b) => b.size - a.size);
    const buffer = await (await api("/points.bin")).arrayBuffer();
    viewer.timings.points = performance.now() - t0;
    viewer.timings.pointBytes = buffer.byteLength;
    xs = new Float32Array(buffer, 0, n);
    ys = new Float32Array(buffer, 4 * n, n);
    topics = new Uint16Array(buffer, 8 * n, n);
    flags = new Uint8Array(buffer, 10 * n, n);
    highlight = new Uint8Array(n);
    colours = new Uint32Array(n);
    lodRows = n > 50000 ? shuffledRows(n).slice(0, Math.min(LOD_SIZE, Math.ceil(n / 2))) : new Uint32Array(0);
    attribute("a_x", xs);
    attribute("a_y", ys);
    attribute("a_hl", highlight);
    let duplicates = 0;
    for (let i = 0; i < n; i++) if (flags[i] & 1) duplicates++;
    duplicateRows = new Uint32Array(duplicates);
    for (let i = 0, k = 0; i < n; i++) if (flags[i] & 1) duplicateRows[k++] = i;
    setIndices("duplicates", duplicateRows);

    detail.budget = lodRows.length || n;
    rebuildLit();
    const colourSelect = $("color-by");
    const options = [];
    if (meta.depths >= 1) options.push(["topic_depth_1", "Topic"]);
    for (const f of meta.fields) {
      if (f.kind === "text" || f.name === "topic_depth_1") continue;
      const label = f.name.startsWith("topic_depth_") ? "Topic, depth " + f.name.slice(12) : f.name === "duplicate_class" ? "Duplicate class" : f.name;
      options.push([f.name, label]);
    }
    for (const [value, label] of options) {
      const option = document.createElement("option");
      option.value = value; option.textContent = label;
      colourSelect.appendChild(option);
    }
    resize();
    fitView(true);
    await colourBy(options.length ? options[0][0] : "duplicate_class");
    buildGrid();
    draw();
    viewer.timings.firstFrame = performance.now() - t0;
    $("loading").hidden = true;
    viewer.ready = true;
    viewer.visibleCount = visibleCount = n;
    setStatus(fmt(n) + " points, " + (topicsByDepth[1] || []).length + " topics");
    emit("ready");
    refreshTags();
  }
  new ResizeObserver(() => resize()).observe($("map"));
  start().catch((error) => {
    viewer.error = error.message;
    $("loading").textContent = "The map could not be loaded: " + error.message;
    setStatus("The map could not be loaded: " + error.message);
  });
})();
