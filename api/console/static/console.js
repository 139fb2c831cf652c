// The console's one script besides htmx: live job rows, closing job details, network errors.
// Loaded from /console/static (the CSP allows no inline script).
(function () {
  "use strict";

  let source = null;
  const lastSeq = new Map();

  function flash(message) {
    const area = document.getElementById("flash");
    if (!area) return;
    const line = document.createElement("p");
    line.className = "error";
    line.setAttribute("role", "alert");
    line.textContent = message;
    area.replaceChildren(line);
  }

  // One EventSource for every running job the page lists; the server ends it when they have all ended.
  function follow() {
    if (source) {
      source.close();
      source = null;
    }
    const table = document.querySelector("table[data-events]");
    if (!table) return;
    const ids = Array.from(table.querySelectorAll("tr[data-job][data-open]"), (row) => row.dataset.job);
    if (ids.length === 0) return;
    source = new EventSource(table.dataset.events + "?ids=" + encodeURIComponent(ids.join(",")));
    source.addEventListener("job", (message) => update(JSON.parse(message.data)));
    source.addEventListener("end", () => {
      source.close();
      source = null;
    });
  }

  function update(event) {
    const seen = lastSeq.get(event.job_id);
    if (seen !== undefined && event.seq <= seen) return;
    lastSeq.set(event.job_id, event.seq);
    const row = document.getElementById("job-" + event.job_id);
    if (!row) return;
    const status = row.querySelector("[data-field=status]");
    status.textContent = event.status;
    status.className = "badge " + event.status;
    row.querySelector("[data-field=state]").textContent = event.state;
    row.querySelector("[data-field=progress]").textContent = event.progress + "%";
    row.querySelector("progress").value = event.progress;
    row.dataset.status = event.status;
    if (event.status === "completed" || event.status === "failed") {
      delete row.dataset.open;
      // The finished row as the server renders it (error code, no cancel button).
      htmx.ajax("GET", row.dataset.row, { target: row, swap: "outerHTML" });
    }
  }

  document.addEventListener("DOMContentLoaded", follow);
  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.target.id === "main") follow();
  });
  document.addEventListener("htmx:beforeRequest", (event) => {
    const area = document.getElementById("flash");
    if (area && event.detail.target && event.detail.target.id !== "flash") area.replaceChildren();
  });
  document.addEventListener("htmx:sendError", () => flash("The server did not answer. Is it running?"));
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-close]");
    if (!button) return;
    const detail = document.getElementById(button.dataset.close);
    if (detail) {
      detail.replaceChildren();
      detail.hidden = true;
    }
  });
  window.addEventListener("pagehide", () => source && source.close());
})();
