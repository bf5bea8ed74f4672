// taskrec dashboard: charts from embedded figures, the live jobs table, the map's neighbours.
// Plain JavaScript; every request goes to this server only.
"use strict";

function drawCharts() {
  if (!window.Plotly) return;
  document.querySelectorAll(".chart[data-figure]").forEach((el) => {
    const figure = JSON.parse(el.dataset.figure);
    const config = { responsive: true, displaylogo: false };
    Plotly.newPlot(el, figure.data, figure.layout, config);
  });
}

// Replace only the cells that changed: a Cancel button is never swapped out under a click.
function morphRows(tbody, html) {
  const fresh = document.createElement("tbody");
  fresh.innerHTML = html;
  const rows = Array.from(fresh.children);
  rows.forEach((row, i) => {
    let current = row.id ? document.getElementById(row.id) : null;
    if (!current || current.parentNode !== tbody) {
      current = row;
      tbody.insertBefore(row, tbody.children[i] || null);
      return;
    }
    if (tbody.children[i] !== current) tbody.insertBefore(current, tbody.children[i] || null);
    current.className = row.className;
    Array.from(row.children).forEach((cell, j) => {
      const old = current.children[j];
      if (!old) current.appendChild(cell);
      else if (old.innerHTML !== cell.innerHTML) old.innerHTML = cell.innerHTML;
    });
  });
  while (tbody.children.length > rows.length) tbody.lastElementChild.remove();
}

function followJobs() {
  const table = document.getElementById("jobs");
  if (!table || !window.EventSource) return;
  const live = document.getElementById("live");
  const source = new EventSource(table.dataset.events);
  source.addEventListener("progress", (event) => {
    morphRows(table.tBodies[0], JSON.parse(event.data).html);
    live.textContent = "live · updated " + new Date().toLocaleTimeString();
  });
  source.addEventListener("open", () => { live.textContent = "live"; });
  source.addEventListener("error", () => {
    // A revoked key or an expired session ends the stream for good: the browser stops retrying
    live.textContent = source.readyState === EventSource.CLOSED
      ? "disconnected: reload the page (or sign in again)"
      : "reconnecting…";
  });
}

function linkNeighbours() {
  const map = document.getElementById("map");
  if (!map || !window.Plotly || !map.on) return;
  const list = document.getElementById("neighbours");
  const base = map.data.length;
  map.on("plotly_click", async (event) => {
    const point = event.points[0];
    const response = await fetch(map.dataset.neighbours + point.customdata, { credentials: "same-origin" });
    if (!response.ok) return;
    const found = await response.json();
    const x = [], y = [];
    found.neighbours.forEach((n) => { x.push(point.x, n.x, null); y.push(point.y, n.y, null); });
    const lines = { type: map.data[0].type, mode: "lines", x, y, hoverinfo: "skip", showlegend: false,
                    line: { color: "#111827", width: 1.5 } };
    if (map.data.length > base) Plotly.deleteTraces(map, map.data.length - 1);
    Plotly.addTraces(map, lines);
    list.replaceChildren();
    const title = document.createElement("p");
    const link = document.createElement("a");
    link.href = "/dashboard/tasks/" + found.task_id;
    link.textContent = found.name;
    title.append("Nearest library tasks to ", link, ":");
    const items = document.createElement("ol");
    found.neighbours.forEach((n) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "/dashboard/tasks/" + n.id;
      a.textContent = n.name;
      li.append(a, " (cosine " + n.similarity.toFixed(3) + ")");
      items.append(li);
    });
    list.append(title, items);
  });
}

function enhanceForms() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  // A browser sends an empty part for a file input left empty; the upload takes only files
  document.querySelectorAll("form[enctype='multipart/form-data']").forEach((form) => {
    form.addEventListener("submit", () => {
      form.querySelectorAll("input[type=file]").forEach((input) => {
        input.disabled = input.files.length === 0;
      });
    });
  });
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
}

document.addEventListener("DOMContentLoaded", () => {
  drawCharts();
  followJobs();
  linkNeighbours();
  enhanceForms();
});
