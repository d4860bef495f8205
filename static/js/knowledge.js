/*
 * The Knowledge page: uploads with per-file progress, "Add web page", re-index / delete, and
 * live indexing progress from AppEvents (events.js).
 *
 * A row is written in one place only, the server's templates/knowledge/_source_row.html: when a
 * source changes (a live event, a reply to our own request) this script fetches its row again
 * and swaps it in. Live events reach the uploader's tabs only, so busy rows are also refreshed
 * over HTTP: after a reconnect, and every POLL_MS for rows no event has touched lately.
 */
(function () {
  "use strict";

  const root = document.getElementById("knowledge");
  if (!root) return;

  const PARALLEL_UPLOADS = 3;
  const POLL_MS = 15000;
  const STATUS_BATCH = 200;
  const BUSY = new Set(["queued", "parsing", "embedding"]);

  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const maxBytes = Number(root.dataset.maxUploadBytes) || Infinity;
  const lastEventAt = new Map(); // source id -> Date.now() of the latest live event or refresh
  const shownAt = new Map(); // source id -> Date.now() when the request for the shown row left
  const removals = new Map(); // source id -> how often its row was removed
  const loading = new Map(); // source id -> { again } while its row is being fetched
  const actionsInFlight = new Set(); // "id:reindex" or "id:delete" while the request runs

  function urlFor(template, id) {
    return template.replace(/\/0\/(?!.*\/0\/)/, "/" + encodeURIComponent(id) + "/");
  }

  function formatBytes(bytes) {
    if (bytes < 1024) return bytes + " bytes";
    const units = ["KB", "MB", "GB"];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return value.toFixed(1) + " " + units[unit];
  }

  function field(row, name) {
    return row.querySelector('[data-field="' + name + '"]');
  }

  function hiddenText(text) {
    const span = document.createElement("span");
    span.className = "visually-hidden";
    span.textContent = " " + text;
    return span;
  }

  // --- rows ----------------------------------------------------------------------------------

  function rowFor(id) {
    return document.getElementById("source-" + id);
  }

  // The server's HTML (escaped by Django's templates) as detached rows; nothing in it runs.
  function parseRows(html) {
    const holder = document.createElement("template");
    holder.innerHTML = html;
    return Array.from(holder.content.querySelectorAll("tr.source-row"));
  }

  function focusables(row) {
    return Array.from(row.querySelectorAll("a[href], button"));
  }

  /* Shows a row from the server in place of the current one, or at the top of its collection
     (`collectionId`) when the page does not show it yet. `sentAt` is when its request left:
     a row from an older request than the one shown is dropped. */
  function showRow(fresh, collectionId, sentAt) {
    const id = fresh.dataset.sourceId;
    if ((shownAt.get(id) || 0) > sentAt) return;
    shownAt.set(id, sentAt);
    for (const form of fresh.querySelectorAll("form[data-action]")) {
      if (actionsInFlight.has(id + ":" + form.dataset.action)) form.querySelector("button").disabled = true;
    }
    const row = rowFor(id);
    if (row) {
      // Keyboard users keep their place: focus moves to the same link or button in the new row.
      const focused = focusables(row).indexOf(document.activeElement);
      row.replaceWith(fresh);
      const again = focused === -1 ? null : focusables(fresh)[focused];
      if (again) again.focus({ preventScroll: true });
      return;
    }
    const section = collectionId != null && document.getElementById("collection-" + collectionId);
    if (!section) return;
    section.querySelector("[data-sources]").prepend(fresh);
    showEmpty(section, false);
  }

  /* Whether a source the page does not show yet belongs at the top of its collection: only on
     the collection's first page, and only when it is newer than every source the page was
     rendered with. A paged collection's older sources (a backlog being indexed) stay on their
     own pages instead of piling up here with every event. */
  function showsNewSource(collectionId, id) {
    const section = document.getElementById("collection-" + collectionId);
    if (!section || section.dataset.page !== "1") return false;
    return Number(id) > Number(section.dataset.newestId || 0);
  }

  /* Fetches a source's row and shows it. One request per row at a time: changes arriving
     meanwhile fetch it once more when it returns, so a burst of progress events costs two
     requests and the row ends on the latest state. */
  function refreshRow(id, collectionId) {
    const key = String(id);
    if (!rowFor(key) && !showsNewSource(collectionId, key)) return; // not ours to show
    const current = loading.get(key);
    if (current) {
      current.again = true;
      return;
    }
    const load = { again: false };
    loading.set(key, load);
    loadRow(key, collectionId).finally(() => {
      loading.delete(key);
      if (load.again) refreshRow(key, collectionId);
    });
  }

  async function loadRow(id, collectionId) {
    const removed = removals.get(id) || 0;
    const sentAt = Date.now();
    let html;
    try {
      const response = await fetch(urlFor(root.dataset.rowUrl, id), { credentials: "same-origin" });
      if (response.status === 404) {
        removeRow(id); // deleted, or no longer visible to us
        return;
      }
      if (!response.ok || response.redirected) return; // e.g. signed out: a login page is no row
      html = await response.text();
    } catch (error) {
      return; // offline: the next event, poll or reconnect tries again
    }
    if ((removals.get(id) || 0) !== removed) return; // removed while we asked: stays removed
    const fresh = parseRows(html)[0];
    if (fresh) showRow(fresh, collectionId, sentAt);
  }

  function removeRow(id) {
    const key = String(id);
    removals.set(key, (removals.get(key) || 0) + 1);
    const row = rowFor(key);
    if (!row) return;
    const section = row.closest("section.collection");
    row.remove();
    lastEventAt.delete(key);
    if (section && !section.querySelector("[data-sources] tr")) showEmpty(section, true);
  }

  function showEmpty(section, empty) {
    section.querySelector("[data-empty]").hidden = !empty;
    section.querySelector("[data-table]").hidden = empty;
  }

  // --- HTTP ----------------------------------------------------------------------------------

  async function postJson(url, body) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        body: body, // none for re-index and delete: an empty multipart body is not valid
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
      });
    } catch (error) {
      return { ok: false, error: "The server could not be reached; check the connection and try again." };
    }
    return readReply(response.status, await response.json().catch(() => null), response.url);
  }

  function readReply(status, body, finalUrl) {
    if (body && typeof body.ok === "boolean") return body;
    if (status === 404) return { ok: false, error: "Not found: it was deleted, or you may no longer change it." };
    if (status === 403) return { ok: false, error: "Refused: your session may have expired. Reload the page." };
    if (finalUrl && finalUrl.indexOf("/accounts/login/") !== -1) {
      return { ok: false, error: "You have been signed out. Sign in again and retry." };
    }
    return { ok: false, error: "Something went wrong (HTTP " + status + "). Try again." };
  }

  async function refreshBusy(all) {
    const now = Date.now();
    const ids = Array.from(root.querySelectorAll("tr.source-row"))
      .filter((row) => BUSY.has(row.dataset.status))
      .map((row) => row.dataset.sourceId)
      .filter((id) => all || now - (lastEventAt.get(id) || 0) >= POLL_MS);
    for (let start = 0; start < ids.length; start += STATUS_BATCH) {
      const batch = ids.slice(start, start + STATUS_BATCH);
      const url = root.dataset.rowsUrl + "?ids=" + batch.join(",");
      const sentAt = Date.now();
      let rows;
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (!response.ok || response.redirected) return;
        rows = parseRows(await response.text());
      } catch (error) {
        return; // offline: the next poll or reconnect tries again
      }
      const seen = new Set();
      for (const row of rows) {
        seen.add(row.dataset.sourceId);
        lastEventAt.set(row.dataset.sourceId, Date.now());
        showRow(row, null, sentAt); // only rows still on the page
      }
      batch.filter((id) => !seen.has(id)).forEach(removeRow); // deleted, or no longer visible
    }
  }

  // --- uploads -------------------------------------------------------------------------------

  const queue = [];
  let activeUploads = 0;

  function addUploadItem(section, file) {
    const item = document.createElement("li");
    item.className = "upload-item";
    const name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload progress of " + file.name);
    const message = document.createElement("span");
    message.className = "upload-message";
    message.textContent = "Waiting…";
    item.append(name, bar, message);
    section.querySelector("[data-uploads]").append(item);
    return item;
  }

  function finishUploadItem(item, ok, text) {
    item.classList.add(ok ? "is-done" : "is-failed");
    item.querySelector(".upload-message").textContent = text;
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "link-button";
    dismiss.textContent = "Dismiss";
    dismiss.append(hiddenText(item.querySelector(".upload-name").textContent));
    dismiss.addEventListener("click", () => item.remove());
    item.querySelector("progress").replaceWith(dismiss);
    if (ok) setTimeout(() => item.remove(), 10000);
  }

  function enqueueFiles(section, files) {
    const form = section.querySelector(".upload-form");
    for (const file of files) {
      const item = addUploadItem(section, file);
      if (file.size > maxBytes) {
        finishUploadItem(item, false, "Too big: the limit is " + formatBytes(maxBytes) + " per file.");
        continue;
      }
      queue.push({ url: form.action, file: file, item: item });
    }
    pumpUploads();
  }

  function pumpUploads() {
    while (activeUploads < PARALLEL_UPLOADS && queue.length) {
      activeUploads += 1;
      upload(queue.shift()).then(() => {
        activeUploads -= 1;
        pumpUploads();
      });
    }
  }

  function upload(job) {
    return new Promise((resolve) => {
      const bar = job.item.querySelector("progress");
      const message = job.item.querySelector(".upload-message");
      const xhr = new XMLHttpRequest();
      xhr.open("POST", job.url);
      xhr.responseType = "json";
      xhr.setRequestHeader("X-CSRFToken", csrfToken);
      xhr.setRequestHeader("Accept", "application/json");
      message.textContent = "Uploading…";
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) bar.value = Math.round((100 * event.loaded) / event.total);
      });
      xhr.addEventListener("load", () => {
        const reply = readReply(xhr.status, xhr.response, xhr.responseURL);
        finishUploadItem(job.item, reply.ok, reply.ok ? reply.message : reply.error);
        if (reply.ok) refreshRow(reply.source.id, reply.source.collection_id);
        resolve();
      });
      xhr.addEventListener("error", () => {
        finishUploadItem(job.item, false, "The upload was interrupted; check the connection and try again.");
        resolve();
      });
      const data = new FormData();
      data.append("file", job.file, job.file.name);
      xhr.send(data);
    });
  }

  function hasFiles(event) {
    return Boolean(event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files"));
  }

  function setUpDropzone(section) {
    const zone = section.querySelector("[data-dropzone]");
    const input = section.querySelector(".file-input");
    const form = section.querySelector(".upload-form");
    let depth = 0; // dragenter/leave fire for every child element
    zone.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth += 1;
      zone.classList.add("is-dragging");
    });
    zone.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) zone.classList.remove("is-dragging");
    });
    zone.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      zone.classList.remove("is-dragging");
      enqueueFiles(section, Array.from(event.dataTransfer.files));
    });
    input.addEventListener("change", () => {
      enqueueFiles(section, Array.from(input.files));
      input.value = "";
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      enqueueFiles(section, Array.from(input.files));
      input.value = "";
    });
  }

  // A file dropped beside a drop zone must not navigate away from the page.
  window.addEventListener("dragover", (event) => hasFiles(event) && event.preventDefault());
  window.addEventListener("drop", (event) => hasFiles(event) && event.preventDefault());

  // --- forms ---------------------------------------------------------------------------------

  // Both address forms: a web page (its row appears at once) and a whole site (its pages appear
  // as a worker reads the sitemap, through the same source events).
  function setUpUrlForm(form) {
    const status = form.querySelector("[data-form-status]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      status.classList.remove("is-failed");
      status.textContent = "Adding…";
      const reply = await postJson(form.action, new FormData(form));
      button.disabled = false;
      status.textContent = reply.ok ? reply.message : reply.error;
      status.classList.toggle("is-failed", !reply.ok);
      if (reply.ok) {
        form.reset();
        if (reply.source) refreshRow(reply.source.id, reply.source.collection_id);
      }
    });
  }

  root.addEventListener("submit", async (event) => {
    const form = event.target;
    const action = form.dataset.action;
    if (action !== "reindex" && action !== "delete") return;
    event.preventDefault();
    const row = form.closest("tr.source-row");
    const id = row.dataset.sourceId;
    const name = field(row, "name").textContent.trim();
    if (action === "delete" && !window.confirm("Delete " + name + "? Its chunks are removed and answers will no longer cite it.")) {
      return;
    }
    const inFlight = id + ":" + action;
    if (actionsInFlight.has(inFlight)) return;
    actionsInFlight.add(inFlight);
    form.querySelector("button").disabled = true;
    const reply = await postJson(form.action);
    actionsInFlight.delete(inFlight);
    // The row may have been swapped for a fresh copy meanwhile: act on the one shown now.
    const shown = rowFor(id);
    if (shown) shown.querySelector('[data-action="' + action + '"] button').disabled = false;
    if (!reply.ok) {
      if (!shown) return;
      const error = field(shown, "error");
      error.textContent = reply.error;
      error.hidden = false;
      return;
    }
    if (action === "delete") removeRow(id);
    else refreshRow(id, reply.source.collection_id);
  });

  // --- start ---------------------------------------------------------------------------------

  for (const section of root.querySelectorAll("section.collection[data-can-manage]")) {
    setUpDropzone(section);
    for (const form of section.querySelectorAll(".url-form")) setUpUrlForm(form);
  }

  if (window.AppEvents) {
    window.AppEvents.on("source.updated", (event) => {
      if (!event.source) return;
      lastEventAt.set(String(event.source.id), Date.now());
      refreshRow(event.source.id, event.source.collection_id);
    });
    window.AppEvents.on("source.deleted", (event) => event.source && removeRow(event.source.id));
    // A page found gone is told to every manager of its collection, not only its uploader.
    window.AppEvents.on("source.gone", (event) => {
      if (event.source) refreshRow(event.source.id, event.source.collection_id);
    });
    window.AppEvents.on("reconnected", () => refreshBusy(true));
  }
  setInterval(() => {
    if (document.visibilityState === "visible") refreshBusy(false);
  }, POLL_MS);
})();
