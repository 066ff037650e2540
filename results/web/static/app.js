// accelbench results browser: draws the page's plots from the JSON embedded beside them and
// makes tables sortable. No network access: every figure's data is in the page itself.
"use strict";

function drawPlots() {
  const nodes = document.querySelectorAll('script[type="application/json"][data-plot]');
  const pending = [];
  nodes.forEach((node) => {
    const target = document.getElementById(node.dataset.plot);
    if (!target || typeof Plotly === "undefined") return;
    const fig = JSON.parse(node.textContent);
    pending.push(Plotly.newPlot(target, fig.data, fig.layout,
      {responsive: true, displaylogo: false}).then((div) => {
      // A point whose customdata is a link (a run in a case's history) opens that page.
      div.on("plotly_click", (ev) => {
        const href = ev.points && ev.points[0] && ev.points[0].customdata;
        if (typeof href === "string" && href) window.location.href = href;
      });
    }));
  });
  return Promise.all(pending);
}

function cellValue(row, index) {
  const cell = row.children[index];
  if (!cell) return "";
  return cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent.trim();
}

function makeSortable(table) {
  const heads = table.tHead ? table.tHead.rows[0].cells : [];
  Array.from(heads).forEach((th, index) => {
    th.classList.add("sort");
    th.title = "sort by this column";
    th.addEventListener("click", () => {
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      const asc = th.dataset.dir !== "asc";
      Array.from(heads).forEach((h) => delete h.dataset.dir);
      th.dataset.dir = asc ? "asc" : "desc";
      const numeric = rows.every((r) => {
        const v = cellValue(r, index);
        return v === "" || !Number.isNaN(Number(v));
      });
      rows.sort((a, b) => {
        let x = cellValue(a, index), y = cellValue(b, index);
        if (numeric) {
          x = x === "" ? Infinity : Number(x);
          y = y === "" ? Infinity : Number(y);
          return asc ? x - y : y - x;
        }
        return asc ? x.localeCompare(y) : y.localeCompare(x);
      });
      rows.forEach((r) => body.appendChild(r));
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable").forEach(makeSortable);
  drawPlots().then(() => { document.body.dataset.ready = "1"; },
                   (err) => { console.error(err); document.body.dataset.ready = "error"; });
});
