/*
 * The Knowledge page: uploads with per-file progress, "Add web page", re-index / delete, and
 * live indexing progress from AppEvents (events.js).
 *
 * Every row is server-rendered (templates/knowledge/_source_row.html) or cloned from
 * <template id="source-row-template">; data only ever goes in through textContent / properties.
 * Live events reach the uploader's tabs only, so busy rows are also refreshed over HTTP: after a
 * reconnect, and every POLL_MS for rows no event has touched lately.
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
  const statusLabels = readJson("source-status-labels");
  const kindLabels = readJson("source-kind-labels");
  const maxBytes = Number(root.dataset.maxUploadBytes) || Infinity;
  const rowTemplate = document.getElementById("source-row-template");
  const lastEventAt = new Map(); // source id -> Date.now() of the latest live event or refresh

  function readJson(id) {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : {};
  }

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

  // --- rows ----------------------------------------------------------------------------------

  function rowFor(id) {
    return document.getElementById("source-" + id);
  }

  function updateRow(row, source) {
    row.dataset.status = source.status;
    field(row, "status").textContent = statusLabels[source.status] || source.status;
    const progress = field(row, "progress");
    progress.value = source.progress;
    progress.textContent = source.progress + "%";
    field(row, "chunk_count").textContent = String(source.chunk_count);
    const error = field(row, "error");
    error.textContent = source.error || "";
    error.hidden = !source.error;
    const updated = field(row, "updated");
    updated.dateTime = new Date().toISOString();
    updated.textContent = "just now";
  }

  function hiddenText(text) {
    const span = document.createElement("span");
    span.className = "visually-hidden";
    span.textContent = " " + text;
    return span;
  }

  function createRow(source, canManage) {
    const row = rowTemplate.content.firstElementChild.cloneNode(true);
    row.id = "source-" + source.id;
    row.dataset.sourceId = String(source.id);
    const nameSlot = field(row, "name");
    if (source.kind === "url" && /^https?:\/\//i.test(source.name)) {
      const link = document.createElement("a");
      link.href = source.name;
      link.rel = "noopener noreferrer nofollow";
      link.target = "_blank";
      link.dataset.field = "name";
      link.textContent = source.name;
      nameSlot.replaceWith(link);
    } else {
      nameSlot.textContent = source.name;
    }
    const chunks = row.querySelector(".chunks-link");
    chunks.href = urlFor(root.dataset.detailUrl, source.id);
    chunks.append(hiddenText("of " + source.name));
    field(row, "kind").textContent = kindLabels[source.kind] || source.kind;
    field(row, "progress").setAttribute("aria-label", "Indexing progress of " + source.name);
    const actions = row.querySelector(".source-actions");
    if (canManage) {
      const reindex = actions.querySelector('[data-action="reindex"]');
      const remove = actions.querySelector('[data-action="delete"]');
      reindex.action = urlFor(root.dataset.reindexUrl, source.id);
      remove.action = urlFor(root.dataset.deleteUrl, source.id);
      reindex.querySelector("button").append(hiddenText(source.name));
      remove.querySelector("button").append(hiddenText(source.name));
    } else {
      actions.remove();
    }
    return row;
  }

  /* Shows `source` (a source.updated payload). `sentAt` marks a reply to our own request:
     it is skipped when a live event newer than the request already updated the row. */
  function showSource(source, options) {
    const opts = options || {};
    const stale = opts.sentAt && (lastEventAt.get(String(source.id)) || 0) > opts.sentAt;
    let row = rowFor(source.id);
    const isNew = !row;
    if (isNew) {
      const section = document.getElementById("collection-" + source.collection_id);
      if (!section) return;
      row = createRow(source, section.hasAttribute("data-can-manage"));
      section.querySelector("[data-sources]").prepend(row);
      showEmpty(section, false);
    }
    if (isNew || !stale) updateRow(row, source);
    if (opts.size) field(row, "size").textContent = formatBytes(opts.size);
  }

  function removeRow(id) {
    const row = rowFor(id);
    if (!row) return;
    const section = row.closest("section.collection");
    row.remove();
    lastEventAt.delete(String(id));
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
      const url = root.dataset.statusUrl + "?ids=" + batch.join(",");
      let body;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!response.ok) return;
        body = await response.json();
      } catch (error) {
        return; // offline: the next poll or reconnect tries again
      }
      const seen = new Set();
      for (const source of body.sources || []) {
        seen.add(String(source.id));
        lastEventAt.set(String(source.id), Date.now());
        showSource(source);
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
      const sentAt = Date.now();
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
        if (reply.ok) showSource(reply.source, { sentAt: sentAt, size: job.file.size });
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

  function setUpUrlForm(section) {
    const form = section.querySelector(".url-form");
    const status = form.querySelector("[data-form-status]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      status.classList.remove("is-failed");
      status.textContent = "Adding…";
      const sentAt = Date.now();
      const reply = await postJson(form.action, new FormData(form));
      button.disabled = false;
      status.textContent = reply.ok ? reply.message : reply.error;
      status.classList.toggle("is-failed", !reply.ok);
      if (reply.ok) {
        form.reset();
        showSource(reply.source, { sentAt: sentAt });
      }
    });
  }

  root.addEventListener("submit", async (event) => {
    const form = event.target;
    const action = form.dataset.action;
    if (action !== "reindex" && action !== "delete") return;
    event.preventDefault();
    const row = form.closest("tr.source-row");
    const name = field(row, "name").textContent.trim();
    if (action === "delete" && !window.confirm("Delete " + name + "? Its chunks are removed and answers will no longer cite it.")) {
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    const sentAt = Date.now();
    const reply = await postJson(form.action);
    button.disabled = false;
    if (!reply.ok) {
      const error = field(row, "error");
      error.textContent = reply.error;
      error.hidden = false;
      return;
    }
    if (action === "delete") removeRow(row.dataset.sourceId);
    else showSource(reply.source, { sentAt: sentAt });
  });

  // --- start ---------------------------------------------------------------------------------

  for (const section of root.querySelectorAll("section.collection[data-can-manage]")) {
    setUpDropzone(section);
    setUpUrlForm(section);
  }

  if (window.AppEvents) {
    window.AppEvents.on("source.updated", (event) => {
      if (!event.source) return;
      lastEventAt.set(String(event.source.id), Date.now());
      showSource(event.source);
    });
    window.AppEvents.on("source.deleted", (event) => event.source && removeRow(event.source.id));
    window.AppEvents.on("reconnected", () => refreshBusy(true));
  }
  setInterval(() => {
    if (document.visibilityState === "visible") refreshBusy(false);
  }, POLL_MS);
})();
