// irob-bench leaderboard: sort any table by clicking a column header, filter rows by name or training method.
// Our own few lines, no library and no network: the site works from file:// and on any static host.
"use strict";

function cellKey(row, column) {
  const cell = row.cells[column];
  const raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
  const number = parseFloat(raw);
  return raw !== "" && !isNaN(number) && isFinite(raw) ? number : raw.toLowerCase();
}

function sortBy(table, column, header) {
  const body = table.tBodies[0];
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  const rows = Array.from(body.rows);
  rows.sort(function (a, b) {
    const x = cellKey(a, column), y = cellKey(b, column);
    const missing = (x === "" || x === "\u2014") - (y === "" || y === "\u2014");
    if (missing !== 0) return missing;  // rows without a value go last either way
    const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
    return ascending ? order : -order;
  });
  for (const th of table.tHead.rows[0].cells) th.removeAttribute("aria-sort");
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  rows.forEach(function (row) { body.appendChild(row); });
}

function applyFilter(input) {
  const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
  for (const row of document.querySelectorAll("table.board tbody tr")) {
    const text = (row.getAttribute("data-filter") || "").toLowerCase();
    row.hidden = !words.every(function (w) { return text.includes(w); });
  }
}

document.addEventListener("DOMContentLoaded", function () {
  for (const table of document.querySelectorAll("table.board")) {
    Array.from(table.tHead.rows[0].cells).forEach(function (th, column) {
      th.tabIndex = 0;
      th.title = "sort by " + th.textContent.trim();
      th.addEventListener("click", function () { sortBy(table, column, th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") sortBy(table, column, th); });
    });
  }
  const input = document.getElementById("filter");
  if (input) input.addEventListener("input", function () { applyFilter(input); });
});
