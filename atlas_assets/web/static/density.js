/* Point density for the Atlas map viewer (viewer.js): a kernel density estimate of the points in
 * view, drawn as contour lines and a translucent shade, so a dense blob reads as dense instead of a
 * flat block of overlapping points.
 *
 * When the view rests (and after a filter), the visible points in and around the view are counted on
 * a grid of 4-pixel cells, the counts blurred with a Gaussian (three box blurs; sigma 12 px at the
 * fitted view, growing with the zoom so that a region's density stays the same) and fixed levels,
 * fractions of the whole map's densest place, traced by marching squares into one path per level:
 * zoomed into a sparse corner shows few contours, into a dense blob many. While the view moves the
 * last result is drawn moved and scaled with it; one O(n) pass per rest (plus one per filter change
 * for the whole map's scale). Zoomed in past 4x the layer fades out: the points themselves show.
 */
(function () {
  "use strict";
  const viewer = window.atlasViewer;
  if (!viewer || !viewer.ext) return;
  const ext = viewer.ext;

  const CELL = 4;
  const SIGMA_PX = 12;          // the kernel at the fitted view; it grows with the zoom up to MAX_ZOOM
  const MAX_ZOOM = 4;           // beyond it the layer fades out (by 2 * MAX_ZOOM): the points speak
  const LEVELS = [0.03, 0.08, 0.16, 0.3, 0.5, 0.75];  // of the whole map's densest place
  let mode = "both";            // "both" | "contours" | "shade" | "off"
  let result = null;            // {cx, cy, scale, w, h, gw, gh, paths, image, key}
  let wanted = "", timer = 0, version = 0;
  viewer.density = { levels: 0, computeMs: 0, max: 0 };

  function boxBlur(src, dst, gw, gh, r) {
    // horizontal then vertical running sums, edges clamped to zero
    const span = 2 * r + 1;
    for (let y = 0; y < gh; y++) {
      let s = 0;
      const row = y * gw;
      for (let x = -r; x <= r; x++) if (x >= 0 && x < gw) s += src[row + x];
      for (let x = 0; x < gw; x++) {
        dst[row + x] = s / span;
        const add = x + r + 1, drop = x - r;
        if (add < gw) s += src[row + add];
        if (drop >= 0) s -= src[row + drop];
      }
    }
    for (let x = 0; x < gw; x++) {
      let s = 0;
      for (let y = -r; y <= r; y++) if (y >= 0 && y < gh) s += dst[y * gw + x];
      const column = new Float32Array(gh);
      for (let y = 0; y < gh; y++) {
        column[y] = s / span;
        const add = y + r + 1, drop = y - r;
        if (add < gh) s += dst[add * gw + x];
        if (drop >= 0) s -= dst[drop * gw + x];
      }
      for (let y = 0; y < gh; y++) src[y * gw + x] = column[y];
    }
  }

  function contour(values, gw, gh, level) {
    // marching squares over cell corners (grid points are cell centres); segments in grid units
    const path = new Path2D();
    let segments = 0;
    const at = (x, y) => values[y * gw + x];
    for (let y = 0; y < gh - 1; y++) {
      for (let x = 0; x < gw - 1; x++) {
        const a = at(x, y), b = at(x + 1, y), c = at(x + 1, y + 1), d = at(x, y + 1);
        const index = (a >= level ? 8 : 0) | (b >= level ? 4 : 0) | (c >= level ? 2 : 0) | (d >= level ? 1 : 0);
        if (index === 0 || index === 15) continue;
        const top = [x + (level - a) / (b - a), y], right = [x + 1, y + (level - b) / (c - b)];
        const bottom = [x + (level - d) / (c - d), y + 1], left = [x, y + (level - a) / (d - a)];
        const pairs = {
          1: [[left, bottom]], 2: [[bottom, right]], 3: [[left, right]], 4: [[top, right]],
          6: [[top, bottom]], 7: [[left, top]], 8: [[left, top]], 9: [[top, bottom]], 11: [[top, right]],
          12: [[left, right]], 13: [[bottom, right]], 14: [[left, bottom]],
          5: (a + b + c + d) / 4 >= level ? [[left, top], [bottom, right]] : [[left, bottom], [top, right]],
          10: (a + b + c + d) / 4 >= level ? [[left, bottom], [top, right]] : [[left, top], [bottom, right]],
        }[index];
        for (const [p, q] of pairs) { path.moveTo(p[0] + 0.5, p[1] + 0.5); path.lineTo(q[0] + 0.5, q[1] + 0.5); segments++; }
      }
    }
    return { path, segments };
  }

  // counts of the visible points on a grid of CELL-pixel cells around a view (with a margin of three
  // kernel widths, so points just outside still count), blurred to a kernel of sigma pixels
  function densityGrid(cx, cy, scale, w, h, sigmaPx) {
    const n = ext.n, xs = ext.xs, ys = ext.ys, mask = ext.visibleMask;
    const sigma = sigmaPx / CELL, margin = Math.ceil(3 * sigma);
    const gw = Math.ceil(w / CELL) + 1 + 2 * margin, gh = Math.ceil(h / CELL) + 1 + 2 * margin;
    const grid = new Float32Array(gw * gh), tmp = new Float32Array(gw * gh);
    const k = scale / CELL, ox = w / 2 / CELL - cx * k + margin, oy = h / 2 / CELL + cy * k + margin;
    for (let i = 0; i < n; i++) {
      if (mask && !mask[i]) continue;
      const gx = Math.floor(xs[i] * k + ox), gy = Math.floor(oy - ys[i] * k);
      if (gx >= 0 && gy >= 0 && gx < gw && gy < gh) grid[gy * gw + gx]++;
    }
    // three box blurs of radius r approximate a Gaussian of variance r(r + 1)
    const r = Math.max(1, Math.round(Math.sqrt(sigma * sigma + 0.25) - 0.5));
    for (let pass = 0; pass < 3; pass++) boxBlur(grid, tmp, gw, gh, r);
    // points per unit of data area: the same for a region whatever the zoom (the kernel scales with it)
    const perArea = (scale / CELL) * (scale / CELL);
    for (let c = 0; c < grid.length; c++) grid[c] *= perArea;
    return { grid, gw, gh, margin };
  }

  let reference = { version: -1, max: 0 };
  function compute(view) {
    const t0 = performance.now();
    const w = view.width, h = view.height;
    const zoom = view.scale / ext.fitScale;
    if (reference.version !== version) {
      // the scale of the levels: the densest place of the whole (filtered) map at the fitted view
      const [x0, y0, x1, y1] = viewer.meta.bounds;
      const whole = densityGrid((x0 + x1) / 2, (y0 + y1) / 2, ext.fitScale, w, h, SIGMA_PX);
      let max = 0;
      for (let c = 0; c < whole.grid.length; c++) if (whole.grid[c] > max) max = whole.grid[c];
      reference = { version, max };
    }
    const { grid, gw, gh, margin } = densityGrid(view.cx, view.cy, view.scale, w, h, SIGMA_PX * Math.min(zoom, MAX_ZOOM));
    const max = reference.max || 1;
    for (let c = 0; c < grid.length; c++) grid[c] /= max;
    const paths = [];
    for (const level of LEVELS) paths.push(contour(grid, gw, gh, level));
    // the shade: a dark ink whose opacity grows with the square root of the density
    const canvas = shadeCanvas || (shadeCanvas = document.createElement("canvas"));
    canvas.width = gw; canvas.height = gh;
    const context = canvas.getContext("2d");
    const image = context.createImageData(gw, gh);
    for (let c = 0; c < grid.length; c++) {
      image.data[4 * c] = 24; image.data[4 * c + 1] = 36; image.data[4 * c + 2] = 72;
      image.data[4 * c + 3] = Math.round(90 * Math.sqrt(Math.min(1, grid[c])));
    }
    context.putImageData(image, 0, 0);
    result = { cx: view.cx, cy: view.cy, scale: view.scale, w, h, paths, canvas, margin };
    viewer.density = {
      levels: paths.filter((p) => p.segments > 0).length, segments: paths.reduce((sum, p) => sum + p.segments, 0),
      computeMs: performance.now() - t0, computed: (viewer.density.computed || 0) + 1, mode,
    };
  }
  let shadeCanvas = null;

  function keyOf(view) {
    return [view.cx, view.cy, view.scale, view.width, view.height, version, mode].join("|");
  }

  function draw(ctx, view) {
    if (mode === "off" || !ext.n) return;
    const key = keyOf(view);
    if (key !== wanted) {
      wanted = key;
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (ext.moving) { wanted = ""; ext.redrawOverlay(); return; }
        compute(view);
        ext.redrawOverlay();
      }, result ? 150 : 0);
    }
    if (!result) return;
    // the grid of the last computation, moved and scaled to the current view
    const fade = Math.min(1, Math.max(0, 2 - view.scale / ext.fitScale / MAX_ZOOM));
    if (fade <= 0) return;
    const k = view.scale / result.scale;
    const ox = view.width / 2 + (result.cx - view.cx) * view.scale - (result.w / 2 + result.margin * CELL) * k;
    const oy = view.height / 2 - (result.cy - view.cy) * view.scale - (result.h / 2 + result.margin * CELL) * k;
    const dpr = view.dpr;
    ctx.save();
    ctx.globalAlpha = fade;
    ctx.setTransform(k * CELL * dpr, 0, 0, k * CELL * dpr, ox * dpr, oy * dpr);
    if (mode === "both" || mode === "shade") {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(result.canvas, 0, 0);
    }
    if (mode === "both" || mode === "contours") {
      ctx.lineWidth = 1 / (k * CELL);
      result.paths.forEach((p, i) => {
        ctx.strokeStyle = "rgba(20, 30, 60, " + (0.25 + 0.45 * (i / LEVELS.length)) + ")";
        ctx.stroke(p.path);
      });
    }
    ctx.restore();
  }

  function setMode(value) {
    mode = value;
    viewer.density.mode = mode;
    ext.redrawOverlay();
  }
  viewer.setDensityMode = setMode;
  ext.addLayer(10, draw);
  ext.on("visibility", () => { version++; ext.redrawOverlay(); });
  ext.on("ready", () => {
    const select = document.getElementById("density-mode");
    if (select) { select.value = mode; select.addEventListener("change", () => setMode(select.value)); }
  });
})();
