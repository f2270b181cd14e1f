/* The table under the map (for viewer.js): the selected rows (box or lasso), else the search
 * results, else every row that passes the charts' filters; their text and fields, a page at a time,
 * sorted by any column (click its header; again: the other way), exported to CSV.
 *
 * Sorting and paging happen on the server (POST rows: the rows as uint32, ?sort=&order=&offset=),
 * so the table costs the page a hundred rows however many are selected; CSV export (POST rows.csv)
 * gets every field of every row in the table, full text, in the table's order.
 */
(function () {
  "use strict";
  const viewer = window.atlasViewer;
  if (!viewer || !viewer.ext) return;
  const ext = viewer.ext;
  const $ = (id) => document.getElementById(id);
  const PAGE = 100;
  const state = { sort: null, order: "asc", offset: 0, rows: null, source: "all", total: 0, ticket: 0 };
  viewer.table = state;

  // the rows the table shows, or null for every row of the map
  function currentRows() {
    const mask = ext.visibleMask;
    const pick = (rows) => {
      if (!mask) return rows;
      let count = 0;
      for (let k = 0; k < rows.length; k++) if (mask[rows[k]]) count++;
      const out = new Uint32Array(count);
      for (let k = 0, j = 0; k < rows.length; k++) if (mask[rows[k]]) out[j++] = rows[k];
      return out;
    };
    if (viewer.selection.length) return ["selection", pick(viewer.selection)];
    if (viewer.searchRows.length) return ["search", pick(viewer.searchRows)];
    if (mask) {
      const out = new Uint32Array(viewer.visibleCount);
      for (let i = 0, j = 0; i < ext.n; i++) if (mask[i]) out[j++] = i;
      return ["filter", out];
    }
    return ["all", null];
  }

  function request(path, rows, extra) {
    const params = new URLSearchParams(Object.assign({ order: state.order }, extra || {}));
    if (state.sort) params.set("sort", state.sort);
    if (!rows) params.set("scope", "all");
    return ext.api(path + "?" + params.toString(), {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/octet-stream" }, ext.authHeaders),
      body: rows || new Uint8Array(0),
    });
  }

  let timer = 0;
  function refresh(resetPage) {
    if (resetPage) state.offset = 0;
    clearTimeout(timer);
    timer = setTimeout(load, 120);
  }
  async function load() {
    const ticket = ++state.ticket;
    const [source, rows] = currentRows();
    state.source = source; state.rows = rows;
    const t0 = performance.now();
    let page;
    try {
      page = await (await request("/rows", rows, { offset: state.offset, limit: PAGE })).json();
    } catch (error) {
      if (ticket === state.ticket) $("table-status").textContent = "The table could not be loaded: " + error.message;
      return;
    }
    if (ticket !== state.ticket) return;
    state.total = page.total;
    state.lastLoadMs = performance.now() - t0;
    render(page);
    state.loaded = (state.loaded || 0) + 1;
  }

  const SOURCE_TEXT = { selection: "selected", search: "found by the search", filter: "passing the filters", all: "on the map" };
  function render(page) {
    const table = $("rows-table");
    table.textContent = "";
    const hidden = new Set(["row"]);
    const columns = page.columns.map((name, i) => [name, i]).filter(([name]) => !hidden.has(name));
    const thead = document.createElement("thead");
    const headRow = document.createElement("tr");
    for (const [name] of columns) {
      const th = document.createElement("th");
      th.scope = "col";
      const sortBy = name === "id" ? "id" : name;
      th.setAttribute("aria-sort", state.sort === sortBy ? (state.order === "asc" ? "ascending" : "descending") : "none");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = name + (state.sort === sortBy ? (state.order === "asc" ? " ▲" : " ▼") : "");
      button.addEventListener("click", () => {
        if (state.sort === sortBy) state.order = state.order === "asc" ? "desc" : "asc";
        else { state.sort = sortBy; state.order = "asc"; }
        refresh(true);
      });
      th.appendChild(button);
      headRow.appendChild(th);
    }
    thead.appendChild(headRow);
    const tbody = document.createElement("tbody");
    const rowIndex = page.columns.indexOf("row");
    for (const cells of page.rows) {
      const tr = document.createElement("tr");
      tr.tabIndex = 0;
      tr.dataset.row = cells[rowIndex];
      for (const [, i] of columns) {
        const td = document.createElement("td");
        const value = cells[i];
        td.textContent = value == null ? "" : String(value);
        if (typeof value === "number") td.className = "num";
        tr.appendChild(td);
      }
      const row = Number(cells[rowIndex]);
      const open = () => { ext.focusRow(row); ext.showDetails(row); };
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
      tbody.appendChild(tr);
    }
    table.append(thead, tbody);
    const last = Math.min(state.total, state.offset + page.rows.length);
    $("table-status").textContent = state.total
      ? ext.fmt(state.total) + " rows " + SOURCE_TEXT[state.source] + "; " + ext.fmt(state.offset + 1) + "–" + ext.fmt(last)
      : "No rows " + SOURCE_TEXT[state.source] + ".";
    $("table-prev").disabled = state.offset === 0;
    $("table-next").disabled = last >= state.total;
    $("table-export").disabled = state.total === 0;
  }

  async function exportCsv() {
    const button = $("table-export");
    button.disabled = true;
    try {
      const blob = await (await request("/rows.csv", state.rows)).blob();
      const url = URL.createObjectURL(blob);
      const link = document.createElement("a");
      link.href = url;
      link.download = viewer.meta.key.replace(/\//g, "-") + "-" + state.source + ".csv";
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      viewer.lastExport = { bytes: blob.size, rows: state.total, source: state.source };
      ext.setStatus("Exported " + ext.fmt(state.total) + " rows as CSV");
    } catch (error) {
      ext.setStatus("Export failed: " + error.message);
    } finally {
      button.disabled = state.total === 0;
    }
  }

  ext.on("ready", () => {
    $("table-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); refresh(false); });
    $("table-next").addEventListener("click", () => { state.offset += PAGE; refresh(false); });
    $("table-export").addEventListener("click", exportCsv);
    $("table-toggle").addEventListener("click", () => {
      const panel = $("table-panel");
      const open = panel.classList.toggle("collapsed") === false;
      $("table-toggle").setAttribute("aria-expanded", String(open));
      $("table-toggle").textContent = open ? "Hide table" : "Show table";
    });
    refresh(true);
  });
  for (const name of ["selection", "search", "visibility"]) ext.on(name, () => { if (viewer.ready) refresh(true); });
})();
