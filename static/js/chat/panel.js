/*
 * The citation panel: the passage behind a chip or a source, and a link to its original.
 */

import { sourceDetails, sourceFor, sourceLink, sourceName } from "./model.js";
import { $, config, els, root } from "./page.js";
import { state } from "./state.js";
import { passageUrl } from "./urls.js";

export function openPanel(message, n, trigger) {
  const source = sourceFor(message, n);
  if (!source) return;
  const panel = els.panel;
  $("[data-panel-number]", panel).textContent = "[" + n + "]";
  $("[data-panel-title]", panel).textContent = sourceName(source);
  const meta = sourceDetails(source);
  $("[data-panel-meta]", panel).textContent = meta;
  $("[data-panel-meta]", panel).hidden = !meta;
  $("[data-panel-quote]", panel).textContent = source.unavailable
    ? "This passage is no longer available: you can no longer read the document it came from."
    : source.text || "(The passage is not available.)";
  $("[data-panel-note]", panel).hidden = !message.notUsed;
  // A web page opens at its address; every indexed source also opens at the cited passage in
  // the knowledge UI (anchored, so the page scrolls to it and highlights it).
  const link = $("[data-panel-link]", panel);
  const href = sourceLink(source, config.sourceUrl);
  const original = Boolean(href) && /^https?:/i.test(href) && Boolean(source.url);
  link.hidden = !href;
  if (href) {
    link.href = href;
    link.textContent = original ? "Open the original" : "Open this passage in its document";
  }
  const passage = $("[data-panel-passage]", panel);
  const passageHref = original ? passageUrl(config.sourceUrl, source.source_id, source.chunk_id) : "";
  passage.hidden = !passageHref;
  if (passageHref) passage.href = passageHref;
  panel.hidden = false;
  root.classList.add("panel-open");
  for (const chip of els.messages.querySelectorAll(".is-active-cite")) chip.classList.remove("is-active-cite");
  if (trigger) trigger.classList.add("is-active-cite");
  state.panelTrigger = trigger || null;
  $("#citation-panel-title", panel).focus();
}

export function closePanel({ restoreFocus = false } = {}) {
  if (els.panel.hidden) return;
  els.panel.hidden = true;
  root.classList.remove("panel-open");
  for (const chip of els.messages.querySelectorAll(".is-active-cite")) chip.classList.remove("is-active-cite");
  if (restoreFocus && state.panelTrigger && state.panelTrigger.isConnected) state.panelTrigger.focus();
  state.panelTrigger = null;
}
