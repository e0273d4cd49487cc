// rpacs: the little script the pages use. Everything works without it except expanding a
// review row in place (its fallback is a link to the values page).
"use strict";

function text(tag, value, className) {
  const element = document.createElement(tag);
  element.textContent = value;  // never innerHTML: values come from DICOM files
  if (className) element.className = className;
  return element;
}

function seriesLink(project, s) {
  const link = document.createElement("a");
  const query = new URLSearchParams({participant: s.participant, event: s.event});
  link.href = "/projects/" + encodeURIComponent(project) + "/series?" + query.toString();
  const number = s.series_number === null ? "?" : s.series_number;
  link.textContent = [s.participant, s.event, "#" + number, s.modality,
                      s.series_description].filter(Boolean).join(" ");
  return link;
}

function renderValues(body, data, project) {
  body.replaceChildren();
  const note = data.values.length < data.n_distinct
    ? data.n_distinct + " distinct values; the " + data.values.length + " most frequent:"
    : data.n_distinct + " distinct value" + (data.n_distinct === 1 ? "" : "s") + ":";
  body.append(text("p", note + (data.complete ? "" : " (series found by sampling)")));
  const table = document.createElement("table");
  table.className = "data values";
  const head = table.createTHead().insertRow();
  for (const title of ["Value", "Instances", "Series"]) {
    const th = text("th", title);
    th.scope = "col";
    head.append(th);
  }
  const rows = table.createTBody();
  for (const item of data.values) {
    const row = rows.insertRow();
    row.insertCell().append(text("span", item.value === "" ? "(empty)" : item.value, "value"));
    const count = row.insertCell();
    count.className = "num";
    count.textContent = item.count;
    const cell = row.insertCell();
    item.series.forEach((s, i) => {
      if (i) cell.append("; ");
      cell.append(seriesLink(project, s));
    });
  }
  body.append(table);
}

async function toggle(button) {
  const row = document.getElementById(button.getAttribute("aria-controls"));
  const open = button.getAttribute("aria-expanded") === "true";
  button.setAttribute("aria-expanded", String(!open));
  row.hidden = open;
  if (open || row.dataset.loaded) return;
  const body = row.querySelector(".values-body");
  body.textContent = "Loading…";
  try {
    const answer = await fetch(button.dataset.url, {credentials: "same-origin",
                                                    headers: {Accept: "application/json"}});
    const data = await answer.json();
    if (!answer.ok) throw new Error(data.detail || answer.statusText);
    const project = decodeURIComponent(button.dataset.url.split("/")[3]);
    renderValues(body, data, project);
    row.dataset.loaded = "1";
  } catch (error) {
    body.replaceChildren(text("p", "Could not load the values: " + error.message, "error"));
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.expand");
  if (button) toggle(button);
});

// The export page: follow a queued or running export until it ends, then show its result.
function followExport(section) {
  const bar = document.getElementById("export-progress");
  const count = document.getElementById("export-count");
  const state = document.getElementById("export-state");
  async function poll() {
    try {
      const answer = await fetch(section.dataset.url, {credentials: "same-origin",
                                                       headers: {Accept: "application/json"}});
      const job = await answer.json();
      if (!answer.ok) throw new Error(job.detail || answer.statusText);
      bar.value = job.percent;
      bar.textContent = job.percent + "%";
      count.textContent = job.done + " of " + (job.total || "?") + " instances";
      state.textContent = job.state;
      if (job.state === "done" || job.state === "failed") {
        window.location.reload();  // the page shows the download or the error
        return;
      }
    } catch (error) {
      count.textContent = "Could not read the progress: " + error.message;
    }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 500);
}

document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("export-job");
  if (section && (section.dataset.state === "queued" || section.dataset.state === "running")) {
    followExport(section);
  }
});
