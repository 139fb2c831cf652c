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
  // On the newest jobs (data-live: the page's filters), jobs made meanwhile join the table as they come,
  // and the stream lasts as long as the page.
  function follow() {
    if (source) {
      source.close();
      source = null;
    }
    const table = document.querySelector("table[data-events]");
    if (!table) return;
    const ids = Array.from(table.querySelectorAll("tr[data-job][data-open]"), (row) => row.dataset.job);
    const live = table.dataset.live;
    if (ids.length === 0 && live === undefined) return;
    let url = table.dataset.events + "?ids=" + encodeURIComponent(ids.join(","));
    if (live !== undefined) url += "&live=true" + (live ? "&" + live : "");
    source = new EventSource(url);
    source.addEventListener("job", (message) => update(JSON.parse(message.data)));
    source.addEventListener("created", (message) => add(table, JSON.parse(message.data).job_id));
    source.addEventListener("listening", () => {
      table.dataset.listening = "";
    });
    source.addEventListener("end", () => {
      source.close();
      source = null;
    });
  }

  // Events that came before their new row did, applied once it is in the table.
  const early = new Map();

  function add(table, jobId) {
    if (document.getElementById("job-" + jobId)) return;
    const body = table.tBodies[0];
    htmx
      .ajax("GET", "/console/jobs/" + encodeURIComponent(jobId) + "/row?new=true", {
        target: body,
        swap: "afterbegin",
      })
      .then(() => {
        const empty = body.querySelector("td.empty");
        if (empty) empty.parentElement.remove();
        const event = early.get(jobId);
        early.delete(jobId);
        if (event) update(event);
      });
  }

  function update(event) {
    const row = document.getElementById("job-" + event.job_id);
    if (!row) {
      const held = early.get(event.job_id);
      if (!held || held.seq < event.seq) early.set(event.job_id, event);
      return;
    }
    const seen = lastSeq.get(event.job_id);
    if (seen !== undefined && event.seq <= seen) return;
    lastSeq.set(event.job_id, event.seq);
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
